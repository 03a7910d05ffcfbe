package swarm

import (
	"net/netip"
	"time"
)

// Worker is a swarm doing download work for the sub-chief: the local peer
// swarm (package peerswarm) or a remote swarm node reached through package
// delegate. The sub-chief cannot tell them apart: whoever builds a worker
// hands it to the sub-chief (New, AddWorker) and says whether its Verified
// flag is believed. The sub-chief leases pieces to each worker; a worker
// downloads only pieces it holds a lease on and reports each finished piece
// with its data.
//
// Ownership: once handed to the sub-chief, a worker is the sub-chief's; it
// is the only one that closes it (Download.RemoveWorker asks it to).
//
// Concurrency:
//
//   - Name, Assign, Revoke, Have, AddPeers, Release and Status may be
//     called from any goroutine, concurrently, and must never block on the
//     worker's progress or the network: they queue a command for the
//     worker's own goroutine (or read a snapshot) and return. They may be
//     called after Close and then do nothing. The slices they are given are
//     the caller's: a worker copies what it keeps.
//   - Events is read by one goroutine of the sub-chief. The worker closes
//     the channel when it stops (after Close, or after it sent
//     EventFailed); it must not block forever on a send once Close is
//     called.
//   - Close may block until the worker's goroutines are gone (a remote
//     worker waits a bounded time for the node to hear it). The sub-chief
//     calls it from its own goroutines, never from the one reading Events,
//     and may call it more than once: later calls wait like the first.
//
// Back-pressure: every EventPiece hands the piece's buffer to the
// sub-chief (which gives it to Storage, or back to Storage's pool), and
// the sub-chief calls Release(piece) exactly once for it when the piece is
// off its hands — stored, or dropped (a duplicate, out of range, or a
// failed re-hash) — unless it closes the worker first. A worker bounds its
// own unreleased pieces: once it has as many as it may hold, it stops
// downloading (or reading from its node) until Release, so a disk slower
// than the network throttles the workers without the sub-chief's loop
// ever waiting. Closing a worker forgets its unreleased pieces.
type Worker interface {
	// Name identifies the worker in status and logs ("local", a node name).
	Name() string
	// Assign adds pieces to the worker's lease.
	Assign(pieces []int)
	// Revoke asks the worker to give pieces back. Without force it keeps
	// pieces it has partly downloaded. It answers with an EventRevoked
	// listing the pieces actually given back and, without force, those it
	// keeps (Kept). A remote worker sends no answer that would list
	// neither (a node before Kept: none when nothing is given back) and
	// may answer a long list in parts.
	Revoke(pieces []int, force bool)
	// Have tells the worker that pieces are verified and durably stored:
	// it stops downloading them and may advertise and upload them.
	Have(pieces []int)
	// AddPeers gives the worker peer addresses to connect to.
	AddPeers(addrs []netip.AddrPort)
	// Events delivers pieces, revocations and failures.
	Events() <-chan WorkerEvent
	// Release says that the piece of one EventPiece is off the receiver's
	// hands (stored or dropped); the receiver no longer holds its buffer.
	// Called at most once per EventPiece (exactly once unless the worker
	// is closed first).
	Release(piece int)
	// Status is a snapshot; it never blocks.
	Status() WorkerStatus
	// Close stops the worker and waits for it.
	Close() error
}

// EventKind says what a WorkerEvent reports.
type EventKind uint8

const (
	// EventPiece carries a finished piece's data; the buffer passes to the
	// receiver, which calls Release once the piece is off its hands.
	// Verified says the worker checked its SHA-1; the sub-chief re-checks
	// pieces from workers it does not trust.
	EventPiece EventKind = iota + 1
	// EventRevoked lists the pieces a worker gave back after Revoke.
	EventRevoked
	// EventFailed says the worker stopped for good (Err says why); every
	// piece it held goes back to the pool.
	EventFailed
	// EventPeers carries peer addresses the worker learned (Addrs; the
	// local peer swarm's PEX): the sub-chief adds them to its peer book
	// and deals them to its workers like a tracker's.
	EventPeers
	// EventLeaving says the worker is leaving cleanly (its node is being
	// stopped): the sub-chief gives it no more pieces. The worker gives
	// back those it will not finish (EventRevoked), delivers those it
	// finishes, and then ends (EventFailed, or its events close).
	EventLeaving
)

// WorkerEvent is a report from a Worker to the sub-chief.
type WorkerEvent struct {
	Kind     EventKind
	Piece    int
	Data     []byte
	Verified bool
	Pieces   []int
	// Kept lists, in an EventRevoked, the pieces of the Revoke the worker
	// keeps because it has started them (without force), so that an
	// answer giving nothing back still says what the worker is fetching.
	Kept  []int
	Err   error
	Addrs []netip.AddrPort // EventPeers
}

// WorkerStatus is a snapshot of one worker.
type WorkerStatus struct {
	Name string
	// State is the sub-chief's view of the worker, set by Download.Status
	// (a worker's own Status leaves it empty).
	State WorkerState
	// Identity is the worker's Identity (Identified) as the sub-chief
	// keys quarantine by it; set by Download.Status, "" when it has none.
	Identity    string
	Peers       int     // connected peers
	MaxPeers    int     // the worker's peer cap now (0: it has none or does not say)
	Seeds       int     // connected peers with every piece
	DownRate    float64 // payload bytes/s received
	UpRate      float64 // payload bytes/s sent
	Downloaded  int64   // payload bytes received (including waste)
	Uploaded    int64   // payload bytes sent
	Wasted      int64   // bytes received that were not needed or failed the hash
	Leased      int     // pieces in the lease, not yet delivered
	Active      int     // pieces being downloaded or verified
	Delivered   int     // pieces delivered to the sub-chief (in Download.Status: those it accepted)
	HashFails   int     // pieces that failed verification
	Banned      int     // banned peer addresses
	Outstanding int     // block requests in flight
	TimedOut    int64   // block requests that passed their deadline (requested again elsewhere)
	Snubbed     int     // connected peers that stopped sending blocks
	// FirstRequest is when the worker queued its first block request and
	// FirstPeer when its first peer completed the handshake (zero: not yet,
	// or not measured): FirstRequest - FirstPeer is our own reaction time.
	FirstRequest, FirstPeer time.Time
	Updated                 time.Time
}

// WorkerState is what the sub-chief makes of a worker.
type WorkerState string

const (
	WorkerActive      WorkerState = "active"      // may hold a lease
	WorkerBenched     WorkerState = "benched"     // missed a lease deadline: no pieces for a while
	WorkerLeaving     WorkerState = "leaving"     // stopping cleanly: finishes and delivers what it started, gets nothing more
	WorkerGone        WorkerState = "gone"        // left, failed or lost its session; its lease went back
	WorkerQuarantined WorkerState = "quarantined" // delivered pieces that failed the re-hash: refused (by Identity) for the rest of the download
)
