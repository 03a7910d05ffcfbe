// Package swarm is the sub-chief of a download (DESIGN points 6, 8, 9,
// 10): it leases pieces to its workers, re-verifies what untrusted workers
// deliver, hands verified pieces to a Storage and publishes a non-blocking
// Status snapshot. It defines the Worker contract its workers implement:
// the local peer swarm (package peerswarm, which owns the peer
// connections, picking, choking and trust) and remote swarm nodes (package
// delegate).
//
// # Structure
//
// A Download is the sub-chief: one goroutine that owns the leases (which
// worker downloads which pieces), the hand-off to Storage and the
// completion state. The downloading is done by Workers: the one given to
// New (the local peer swarm, package peerswarm, built by the caller:
// trusted, and its end fails the download) and those added with AddWorker
// (remote swarms, package delegate). Leases are sized to each worker's measured throughput
// (LeaseHorizon) but capped by the worker's rate-weighted share of the
// pieces left, refilled as pieces arrive, stolen back (unstarted pieces
// only, Revoke without force) from a worker over its share while another
// runs dry, duplicated across workers in end game only when a holder is
// known to have started them (balance.go), and returned to the pool
// when a worker fails, is quarantined (bad pieces) or misses its lease
// deadline (delivers nothing for LeaseTimeout while holding pieces, as the
// watchdog that holds the deadline reports; it is then benched for a
// while, see leaseclock.go). Pieces from remote workers are
// re-hashed before they are stored; the first worker's are trusted. Every
// delivered piece is released back to its worker (Worker.Release) once it
// is stored or dropped: that is the one back-pressure from a slow disk. Peer
// addresses from the trackers are spread across the workers, each to one
// worker, and a worker that joins gets its share of the known ones at
// once (peerbook.go).
//
// Status counts the pieces returned to the pool by why (Returned). Which
// worker delivered each accepted piece is kept apart from Status, a byte
// per piece into a table of names (piecesources.go), and read with
// PieceSources on the sub-chief's loop: Status is copied on every tick.
//
// The lease book and the peer book are passive (no goroutines, no I/O)
// and tested alone.
package swarm
