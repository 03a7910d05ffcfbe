// Package cluster is Flotilla's membership layer: a wrapper around
// hashicorp/memberlist that coordinators and swarm nodes use to find each
// other.
//
// Each member advertises a Meta (role, delegate endpoint, version,
// capacity). Members join by addresses or DNS names that may resolve to
// many IPs (a Kubernetes headless service), in the background and retrying
// until a member answers (Cluster.Joined). Join, leave, update and failure
// events arrive on Cluster.Events; memberlist's callbacks never wait for the
// reader (see pump in events.go).
//
// Gossip is encrypted and authenticated with a subkey of the cluster Key
// (memberlist keyring, AES-GCM), so a process without the key cannot join or
// inject state. The Key type also loads, parses and derives the subkey that
// package delegate uses for its TLS identity; it never prints itself.
package cluster
