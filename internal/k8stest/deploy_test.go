package k8stest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The names deploy/k8s/ gives its objects.
const (
	namespace   = "flotilla"
	secretName  = "flotilla-keys"
	coordSts    = "flotilla-coord"
	nodeDeploy  = "flotilla-swarmnode"
	apiService  = "flotilla-api"
	coordLabels = "app.kubernetes.io/name=flotilla,app.kubernetes.io/component=coordinator"
	nodeLabels  = "app.kubernetes.io/name=flotilla,app.kubernetes.io/component=swarmnode"
	stateMount  = "/var/lib/flotilla" // the coordinator's volume "state"
)

// testOverlay is the test's kustomize overlay of deploy/k8s: the images
// loaded into containerd (never pulled), CPU requests small enough for
// five nodes on a two-core machine (memory requests and limits stay as
// the base has them, so that the figures compare with them).
const testOverlay = `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - %s
patches:
  - target: {kind: StatefulSet}
    patch: |-
      - {op: replace, path: /spec/template/spec/containers/0/imagePullPolicy, value: Never}
      - {op: replace, path: /spec/template/spec/containers/0/resources/requests/cpu, value: 50m}
  - target: {kind: Deployment}
    patch: |-
      - {op: replace, path: /spec/template/spec/containers/0/imagePullPolicy, value: Never}
      - {op: replace, path: /spec/template/spec/containers/0/resources/requests/cpu, value: 50m}
`

// statePV is a hostPath PersistentVolume for the coordinator's claim
// (the cluster has no provisioner).
const statePV = `apiVersion: v1
kind: PersistentVolume
metadata: {name: flotilla-test-state}
spec:
  capacity: {storage: 100Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  claimRef: {namespace: %s, name: state-%s-0}
  hostPath: {path: %s, type: Directory}
`

// deployed is deploy/k8s/ applied to the cluster.
type deployed struct {
	hostState string // the hostPath behind the coordinator's /var/lib/flotilla
	token     string
}

// hostPath is where a path in the coordinator's container is on the host.
func (d *deployed) hostPath(inPod string) string {
	rel, ok := strings.CutPrefix(inPod, stateMount)
	if !ok {
		panic(fmt.Sprintf("%s is not on the coordinator's volume %s", inPod, stateMount))
	}
	return filepath.Join(d.hostState, rel)
}

// deploy creates the Secret (as docs/kubernetes.md tells an operator),
// the hostPath volume and applies the test overlay of deploy/k8s/.
func deploy(t *testing.T, c *cluster) *deployed {
	t.Helper()
	base := filepath.Join(c.root, "deploy", "k8s", "base")
	if _, err := os.Stat(filepath.Join(base, "kustomization.yaml")); err != nil {
		t.Fatalf("deploy/k8s/base/kustomization.yaml: %v", err)
	}
	dir := t.TempDir()
	d := &deployed{hostState: filepath.Join(dir, "state"), token: randomHex(t)}
	// The coordinator runs as 65532 and a hostPath gets no fsGroup.
	if err := os.MkdirAll(d.hostState, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(d.hostState, 65532, 65532); err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(dir, "overlay")
	os.MkdirAll(overlay, 0o755)
	rel, err := filepath.Rel(overlay, base) // kustomize takes no absolute path
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(overlay, "kustomization.yaml"), fmt.Sprintf(testOverlay, rel))
	writeFile(t, filepath.Join(dir, "pv.yaml"), fmt.Sprintf(statePV, namespace, coordSts, d.hostState))

	keys := makeKeys(t, c.root, dir, d.token)
	c.must("apply", "-f", filepath.Join(dir, "pv.yaml"))
	// The namespace first, then the Secret in it (docs/kubernetes.md), then the rest.
	c.must("apply", "-f", filepath.Join(base, "namespace.yaml"))
	args := []string{"-n", namespace, "create", "secret", "generic", secretName}
	for _, k := range keys {
		args = append(args, "--from-file="+k)
	}
	c.must(args...)
	c.must("apply", "-k", overlay)
	return d
}

// makeKeys writes the Secret's files: cluster.key (coord keygen),
// coordinator.key and coordinator.pub (coord keygen --coordinator) and
// api.token, with a coord built for the host.
func makeKeys(t *testing.T, root, dir, token string) []string {
	t.Helper()
	coord := filepath.Join(dir, "coord")
	build := exec.Command("go", "build", "-o", coord, "./cmd/coord")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/coord: %v: %s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run := func(out string, args ...string) {
		cmd := exec.CommandContext(ctx, coord, args...)
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("coord %s: %v", strings.Join(args, " "), err)
		}
		writeFile(t, out, string(b))
	}
	ks := filepath.Join(dir, "keys")
	os.MkdirAll(ks, 0o700)
	run(filepath.Join(ks, "cluster.key"), "keygen")
	run(filepath.Join(ks, "coordinator.pub"), "keygen", "--coordinator", filepath.Join(ks, "coordinator.key"))
	writeFile(t, filepath.Join(ks, "api.token"), token)
	return []string{
		"cluster.key=" + filepath.Join(ks, "cluster.key"),
		"coordinator.key=" + filepath.Join(ks, "coordinator.key"),
		"coordinator.pub=" + filepath.Join(ks, "coordinator.pub"),
		"api.token=" + filepath.Join(ks, "api.token"),
	}
}

func randomHex(t *testing.T) string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
