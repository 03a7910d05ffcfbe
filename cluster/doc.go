// Package cluster is Flotilla's membership layer: a wrapper around
// hashicorp/memberlist that coordinators and swarm nodes use to find each
// other.
//
// Each member advertises a Meta (role, delegate endpoint, version,
// capacity). Members join by addresses or DNS names that may resolve to
// many IPs (a Kubernetes headless service), in the background and retrying
// until a member answers (Cluster.Joined); once joined, a member that finds
// itself alone, or a Join address that is not a live member (a restarted
// coordinator), is joined again.
//
// # Events
//
// Join, leave, update and failure events of other members arrive on
// Cluster.Events. memberlist's callbacks never wait for the reader: they
// hand the event to one pump goroutine that keeps an unbounded but
// coalescing queue (an Update merges into the member's undelivered Join or
// Update; Join, Leave and Fail are kept), so memory grows only with real
// membership churn. memberlist reports a graceful leave and a failure
// through the same callback; Cluster.Leave therefore first announces a
// "leaving" flag in its metadata, and a departure is EventLeave when that
// flag was seen, EventFail otherwise.
//
// # Failure detection
//
// From a member's crash to every other member's EventFail takes about a
// probe interval (1 s) plus memberlist's suspicion timeout,
// SuspicionMult·max(1, log10 n)·ProbeInterval (3 s local, 4 s lan), which
// grows toward 6× that when too few members confirm the suspicion.
// BenchmarkFailureDetection measures it on loopback; the README's
// Benchmarks section has the figures.
//
// # Security
//
// Gossip, UDP and TCP, is encrypted and authenticated (AES-GCM, memberlist
// keyring, incoming and outgoing verification on) with
// Key.Derive(PurposeGossip), so a process without the cluster key can
// neither join nor inject state; package delegate derives its own subkey
// (PurposeDelegateTLS). LoadKey reads the key from --cluster-key-file or
// FLOTILLA_CLUSTER_KEY. A key file readable by group or others is accepted
// (Kubernetes mounts secrets 0644 by default); CheckKeyFileMode tells the
// caller so it can warn. A Key prints only its fingerprint.
//
// # Goroutines
//
// Close stops the pump and the join goroutine and waits for them.
// memberlist's own goroutines end shortly after its Shutdown; a probe in
// flight finishes its probe interval first (up to 8 s when the probed
// member is dead). They call nothing of ours that could block.
package cluster
