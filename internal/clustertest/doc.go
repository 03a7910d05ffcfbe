// Package clustertest holds the end-to-end tests of a Flotilla cluster
// (issue 4): real `coord` and `swarmnode` processes, built once per test
// run, download real torrents from opentracker and aria2c seeders in the
// network-namespace lab of package lab (NewCluster): every host's WAN link
// is capped with tc and the cluster link between hosts is not.
//
// The tests need root (network namespaces); they skip on a laptop and fail
// under CI=true without it. A hostile swarm node (corrupted pieces) is this
// test binary itself, re-executed inside a node's namespace.
//
// The package has no API: everything is in its _test.go files.
package clustertest
