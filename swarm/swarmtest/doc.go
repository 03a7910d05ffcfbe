// Package swarmtest holds what the tests of swarm and of the packages that
// drive it (peerswarm, delegate) share: a reproducible test torrent (NewTorrent), an
// in-memory piece storage that satisfies swarm.Storage (NewStorage), a
// logger that writes through the test (Logger) and a rate-capped TCP proxy
// (Throttle).
//
// It does not import swarm, so swarm's own in-package tests can use it, and
// it imports nothing meant only for tests beyond the testing package.
package swarmtest
