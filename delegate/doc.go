// Package delegate is the coordinator↔swarm-node protocol (DESIGN point
// 10): a coordinator's sub-chief hands leases of pieces to a remote swarm
// node, which downloads them with its own peer swarm and streams the
// verified pieces back.
//
// The wire protocol is written down in spec.md beside this file: TCP, then
// TLS 1.3 with credentials derived from the cluster key (both sides pin
// the derived public key, so nobody without the key gets a message
// decoded), a versioned hello in which the coordinator also proves its
// coordinator key (a node obeys only the coordinator whose public key it
// was given, not any holder of the cluster key), then a yamux session
// carrying one control
// stream (msgpack messages with a one-byte type, see types.go) and data
// streams of raw piece bytes whose flow control is yamux's stream window.
//
// Coordinator side: DialSession (or ClientSession over an existing
// connection) returns a *Session, one per node, which carries many jobs
// (protocol version 3); its OpenJob returns a *RemoteSwarm, which
// satisfies swarm.Worker, so the sub-chief drives it like its local
// swarm. Closing a RemoteSwarm ends its job only (Cancel); a session that
// drops fails every job on it. Dial (or Client) is a session of one job,
// closed with it. Its EventPiece events are never marked Verified:
// a node is trusted for bandwidth, never for data, and the sub-chief
// re-hashes every piece from a worker it does not trust.
//
// Node side: a *Server accepts sessions and, for each job, runs a worker
// (by default the same peerswarm.Swarm the coordinator runs, restricted
// to the node's lease) and forwards the coordinator's instructions to it.
// Its jobs are bounded (MaxJobs in all, MaxJobsPerSession per session;
// over either a Job is rejected, ErrNodeBusy) and share the node's
// MaxPeers: each job's swarm gets MaxPeers divided by the jobs running,
// re-divided as jobs start and end (peerbudget.go).
// Its DataDir (nodedisk.go) holds each job's pieces for uploading and the
// pieces a lost session keeps for the next (kept.go); a full disk fails
// the job with ErrNodeDiskFull, reported to the coordinator, and what a
// killed node left there is removed when the next one starts.
//
// Every input is bounded before it is allocated: a frame's type,
// direction and per-type cap are checked from its header, a body's
// declared container lengths against its size and an element budget, a
// node's pending handshakes apart from its sessions, and a piece from a
// node in time (PieceTimeout, MinPieceRate: a watchdog packet per piece
// read, remote_watch.go) and in memory (it grows with the bytes that
// arrived).
//
// The package decides no policy: what to lease to whom is the sub-chief's.
//
// Concurrency: every long-lived unit (a coordinator's Session and each
// RemoteSwarm on it, a node session, a node job) has one goroutine per
// blocking edge (a writer draining a command queue, a reader per stream)
// and a close channel plus a done signal; methods that the sub-chief
// calls never block on the network.
package delegate
