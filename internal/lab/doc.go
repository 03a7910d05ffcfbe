// Package lab builds local BitTorrent swarms out of real programs for
// Flotilla's tests, its benchmark (cmd/flotilla-bench) and its demo
// (scripts/demo.sh): a deterministic pseudo-random payload, a .torrent for
// it, a Debian opentracker and N aria2c seeders, each on its own address.
//
// A lab is made of Hosts. A Host is a network address plus a way to run a
// program and to dial from that address. The loopback lab (loopback.go) puts
// every host on its own 127.0.0.x address of the root network namespace,
// which needs no privileges. The namespace lab (netns.go, root only) puts
// every host in a network namespace of its own, linked by veth pairs to a
// bridge in another namespace, optionally rate-capped with tc; nothing is
// created in the root namespace. The payload, torrent, tracker and seeder
// code is the same for both (StartSwarm takes Hosts).
//
// The cluster lab (clusterlab.go, root only) is the namespace lab of issue 4:
// a WAN bridge with the tracker and uncapped seeders, and cluster hosts
// (coordinator, swarm nodes) whose WAN link is capped with tc and who share a
// second, uncapped cluster link. clusterproc.go runs `coord download` and
// `swarmnode` on those hosts and reads their logs (progress percentages, the
// per-swarm completion summary); internal/clustertest and
// `flotilla-bench --scaling` are built on it.
//
// Nothing here takes a *testing.T: functions take a context and a *Cleanup
// stack, so a plain program can build a lab and tear it down on SIGINT.
// Every process is started in its own process group with Pdeathsig SIGKILL
// and is killed (the whole group) when the Cleanup runs. internal/testenv
// adapts these functions for tests.
package lab
