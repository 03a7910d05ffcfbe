// Package swarm is the peer-swarm sub-chief (DESIGN points 6, 8, 9, 10):
// it owns the peer connections of a download, picks pieces and blocks,
// times out and re-requests blocks, verifies pieces, chokes and unchokes
// for upload, bans peers that send bad data, hands verified pieces to a
// Storage and publishes a non-blocking Status snapshot.
//
// # Structure
//
// A Download is the sub-chief: one goroutine that owns the leases (which
// worker downloads which pieces), the hand-off to Storage and the
// completion state. The downloading is done by Workers: the local peer
// swarm (*LocalSwarm) and remote swarms added with AddWorker (package
// delegate). Leases are sized to each worker's measured throughput
// (LeaseHorizon) but capped by the worker's rate-weighted share of the
// pieces left, refilled as pieces arrive, stolen back (unstarted pieces
// only, Revoke without force) from a worker over its share while another
// runs dry, duplicated across workers in end game only when a holder is
// known to have started them (balance.go), and returned to the pool
// when a worker fails, is quarantined (bad pieces) or misses its lease
// deadline (delivers nothing for LeaseTimeout while holding pieces; it is
// then benched for a while; the deadline is also a watchdog packet when
// Config.Watchdog is set, see leaseclock.go). Pieces from remote workers are
// re-hashed before they are stored; the local swarm's are trusted. Peer
// addresses from the trackers are spread across the workers, each to one
// worker, and a worker that joins gets its share of the known ones at
// once (peerbook.go).
//
// A LocalSwarm has one owner goroutine for all peer state. Each
// connection has a reader goroutine, which decodes messages and sends
// them to the owner in batches (one channel operation per read buffer,
// not per block), and a writer goroutine, which drains an outbound queue
// the owner appends to without ever blocking and reads upload blocks from
// Storage itself. SHA-1 runs in a small pool (one goroutine per CPU, at
// most 4). Piece buffers come from Storage's pool when it has one
// (BufferPool) and are bounded by MaxInFlightBytes, which counts pieces
// being downloaded, verified or waiting for Storage.
//
// # Policies
//
//   - Picking (Picker): only leased pieces; partially downloaded pieces
//     first, then rarest first with a random tie-break; end game duplicates
//     outstanding blocks (at most 3 requesters) and cancels them on receipt.
//   - Pipelining: depth = clamp(rate*TargetLatency/16 KiB, MinPipeline,
//     MaxPipeline), StartPipeline before the first rate sample, never over
//     the peer's BEP 10 reqq.
//   - Deadlines (the peer-swarm watchdog): each block request is a packet
//     with an issue time and a deadline (RequestTimeout later), fulfilled
//     when its block arrives, as in package watchdog. Every request has the
//     same timeout and peers answer in order, so each peer's send-order
//     queue is already sorted by deadline: it is the ledger's heap, checked
//     at its head on every tick, with no per-request allocation (a shared
//     watchdog.Watchdog would cost a channel operation per block). An
//     overdue block is cancelled, counted (WorkerStatus.TimedOut) and
//     requested elsewhere. A peer that
//     unchoked us and leaves our requests unanswered for SnubTimeout is
//     snubbed (one request at a time, no regular upload slot).
//   - Choking: UploadSlots-1 slots to the fastest uploaders to us plus one
//     optimistic unchoke rotated every OptimisticInterval while
//     downloading; round-robin while seeding; a newly interested peer gets
//     a free slot at once.
//   - Trust: every contributor of a piece that fails its hash is
//     distrusted; one that contributes to another failed piece
//     (MaxStrikes) is banned by IP. A distrusted peer downloads only pieces
//     no other peer is working on and no one joins them, so its next
//     failure is its alone. A failed piece with several contributors is
//     kept until the piece verifies: the peers whose blocks were right are
//     trusted again. Protocol violations (oversized messages, bad
//     bitfields, requests outside the torrent) ban at once. The ban list is
//     consulted on dial and accept.
//
// The passive algorithms (Picker, choker, trust book,
// lease book) have no goroutines and no I/O and are tested alone.
package swarm
