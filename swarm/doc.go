// Package swarm is the peer-swarm sub-chief (DESIGN points 6, 8, 9, 10):
// it owns the peer connections of a download, picks pieces and blocks,
// times out and re-requests blocks, verifies pieces, chokes and unchokes
// for upload, bans peers that send bad data, hands verified pieces to a
// Storage and publishes a non-blocking Status snapshot.
//
// Structure. A Download is the sub-chief: one goroutine that owns the
// leases (which swarm downloads which pieces), the Storage hand-off and the
// completion state. The work itself is done by Workers: the local peer
// swarm (LocalSwarm, one goroutine owning every peer connection's state,
// plus a reader and a writer goroutine per connection and a small SHA-1
// pool) and, later, remote swarms reached through package delegate. Both
// satisfy Worker. The passive algorithms — Picker, choker, deadline table,
// trust book, lease book — have no goroutines and are unit-tested alone.
package swarm
