// Package k8s holds Flotilla's Kubernetes manifests (a kustomize base in
// base/ and overlays in overlays/) and no code: its tests decode every
// manifest strictly with the Kubernetes API types and check the project's
// rules on them (selectors, secret keys, ports against flags, probes,
// security context). docs/kubernetes.md is the operator's guide.
package k8s
