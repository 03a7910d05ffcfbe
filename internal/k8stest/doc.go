// Package k8stest holds the real-cluster test of deploy/k8s/: a single-node
// Kubernetes v1.34.2 brought up by scripts/k8s/up.sh, Flotilla's images
// loaded into it, the manifests applied with a test overlay, and downloads
// from opentracker and aria2c seeders running on the node's address, while
// the test scales, deletes and rolls the pods (TestCluster).
//
// It is heavy (minutes, root, ~1.5 GB of memory), so it runs in its own
// step: scripts/k8s/test.sh, which CI calls from scripts/test.sh. Under
// plain `go test ./...` it runs only with FLOTILLA_K8S_TEST=1.
package k8stest
