// Package peerswarm is the local peer swarm: a swarm.Worker that connects
// to BitTorrent peers, downloads the pieces the sub-chief (package swarm)
// leases to it, verifies them and delivers them with their data, and
// uploads the pieces the sub-chief says are stored. The caller builds it
// for a swarm.Config and hands it to swarm.New; the coordinator and every
// swarm node (package delegate) run the same Swarm.
//
// # Structure
//
// A Swarm has one owner goroutine (Swarm.run) for all peer state. The
// state lives in sub-owners, each a plain type with its own fields,
// called only from run and handed what it needs from the others as
// arguments (mostly the peer table); none holds the Swarm:
//
//   - peerTable (table.go): the connected peers and the admission caps:
//     admit (makeRoom evicts an idle incoming peer), add, remove, and
//     send, which never blocks (a full queue marks the table overfull),
//     and setMaxPeers (the cap changed while running, Swarm.SetMaxPeers:
//     lowered, the least useful peers over it are dropped at once).
//     What a peer's arrival and departure mean to the others is the
//     Swarm's register and dropPeer (peer.go).
//   - requester (requests.go, interest.go): the Picker and every request
//     we send: fill, received, checkTimeouts, cancelPiece; what each peer
//     has (availability) and our interest (peerHas, peerBitfield,
//     pieceDone).
//   - uploader (upload.go): what we advertise (greet, advertise), who
//     gets an upload slot (the choker's rounds, maybeUnchoke) and serving
//     requests (serve, maxOutstanding).
//   - guard (guard.go): the trust book, the ban list and the distrusted
//     set it publishes to other goroutines (Banned, Distrusted, the
//     wire), and departed peers' addresses for blame (sources,
//     pruneGone). It decides (hashFailed, absolve, ban); the Swarm drops
//     banned peers (Swarm.ban) and the requester restricts distrusted ones
//     (setDistrust).
//   - dialer (candidates.go): the addresses AddPeers and PEX give, their
//     back-off after failures, and dialMore within the caps.
//
// The Swarm itself keeps the swarm.Worker calls and the status snapshot
// (swarm.go: publish), the message dispatch (messages.go: handleBatch,
// handleMsg, and gotBlock, which copies fresh blocks into the piece
// buffers) and the verdict of the SHA-1 pool (verify.go: hashed).
//
// Off the owner goroutine runs the wire (wire.go). Each connection has a
// reader goroutine, which decodes messages and sends them to the owner in
// batches (one channel operation per read buffer, not per block), and a
// writer goroutine, which drains an outbound queue the owner appends to
// without ever blocking and reads upload blocks from Storage itself.
// SHA-1 runs in a small pool (one goroutine per CPU, at most 4). Piece
// buffers (buffers.go) come from Storage's pool when it has one
// (swarm.BufferPool) and are bounded by MaxInFlightBytes, which counts
// pieces being downloaded, being verified, or delivered and not yet
// released (swarm.Worker's Release: stored or dropped by the sub-chief).
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
//     snubbed (one request at a time, no regular upload slot). Choked by
//     every peer holding a piece of our lease for ChokedNudge, we tell
//     each of them again that we are interested (interest.go: aria2c
//     seeders hold a choke round when a choked peer does).
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
//   - Peer exchange (pex.go, BEP 11): ut_pex is advertised unless the
//     torrent is private. Each peer that supports it gets, at most once
//     per PexInterval (a minute; the first soon after its extension
//     handshake), the reachable peers (dialed by us, or with a listen
//     port) that joined and left since its last message, at most 50 of
//     each, never itself. A peer's PEX more often than three quarters of
//     the interval is ignored; at most 50 addresses a message are taken,
//     become dial candidates and go to the sub-chief (swarm.EventPeers).
//     A private torrent neither sends nor takes PEX. Flags: a seed (0x02)
//     is not taken while we seed; a peer that prefers encryption (0x01)
//     is dialed with MSE first, other PEX peers in plaintext first (then
//     MSE) under mse.Prefer; we flag RC4 connections 0x01.
//   - Adoption (adopt.go): connections a magnet's metadata fetch set up
//     (peerwire.Handover) join as if dialed by us, already greeted.
//
// The passive algorithms (Picker, choker, trust book, pipeline depth) have
// no goroutines and no I/O and are tested alone; the sub-owners above
// drive them.
package peerswarm
