package k8stest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flotilla/internal/testenv"
)

// cluster is a running single-node cluster made by scripts/k8s/up.sh.
type cluster struct {
	t          *testing.T
	root       string // the repository
	dir        string // K8S_DIR
	bin        string // the Kubernetes programs
	kubeconfig string
	nodeIP     string
	node       string
}

// repoRoot is the repository's top directory (tests run in their package's).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// startCluster builds (or takes from the cache) the Kubernetes programs and
// brings the cluster up; scripts/k8s/down.sh runs in t.Cleanup.
func startCluster(t *testing.T, fig *figures) *cluster {
	t.Helper()
	c := &cluster{t: t, root: repoRoot(t), node: "flotilla-node"}
	c.bin = os.Getenv("K8S_BIN")
	if c.bin == "" {
		out := c.script(60*time.Minute, nil, "scripts/k8s/build-binaries.sh")
		c.bin = strings.TrimSpace(out)
	}
	dir, err := os.MkdirTemp("", "flotilla-k8s-")
	if err != nil {
		t.Fatal(err)
	}
	c.dir = dir
	env := []string{"K8S_DIR=" + dir, "K8S_BIN=" + c.bin}
	t.Cleanup(func() {
		c.keepLogs()
		c.script(5*time.Minute, env, "scripts/k8s/down.sh")
		os.RemoveAll(dir)
	})
	began := time.Now()
	c.kubeconfig = strings.TrimSpace(lastLine(c.script(10*time.Minute, env, "scripts/k8s/up.sh")))
	fig.add("cluster up (empty state to node and CoreDNS Ready)", time.Since(began))
	rec, err := os.ReadFile(filepath.Join(dir, "record.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(rec), "\n") {
		if ip, ok := strings.CutPrefix(l, "nodeip "); ok {
			c.nodeIP = ip
		}
	}
	if c.nodeIP == "" {
		t.Fatalf("%s/record.txt names no node address", dir)
	}
	return c
}

// keepLogs copies, after a failure, the daemons' logs and the cluster's
// objects and events to the test's artifact directory (go test -artifacts
// keeps it).
func (c *cluster) keepLogs() {
	if !c.t.Failed() {
		return
	}
	dst := c.t.ArtifactDir()
	exec.Command("cp", "-r", filepath.Join(c.dir, "logs"), filepath.Join(c.dir, "pod-logs"), dst).Run()
	for _, what := range [][]string{{"get", "all,events", "-A", "-o", "wide"}, {"describe", "pods", "-A"}} {
		out, _ := c.kubectl(what...)
		os.WriteFile(filepath.Join(dst, what[0]+".txt"), []byte(out), 0o644)
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// script runs a repository script as root, returning its stdout; its
// stderr is logged.
func (c *cluster) script(timeout time.Duration, env []string, name string, args ...string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.root, name), args...)
	cmd.Dir = c.root
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if stderr.Len() > 0 {
		c.t.Logf("%s: %s", name, strings.TrimSpace(stderr.String()))
	}
	if err != nil {
		c.t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return stdout.String()
}

// kubectl runs kubectl against the cluster; the error holds its stderr.
func (c *cluster) kubectl(args ...string) (string, error) {
	return c.kubectlIn(nil, args...)
}

func (c *cluster) kubectlIn(stdin []byte, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, "kubectl"), append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// must runs kubectl and fails the test on an error.
func (c *cluster) must(args ...string) string {
	c.t.Helper()
	out, err := c.kubectl(args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// getJSON decodes `kubectl get ... -o json` into v.
func (c *cluster) getJSON(v any, args ...string) error {
	out, err := c.kubectl(append(append([]string{"get"}, args...), "-o", "json")...)
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(out), v)
}

// importImage loads a docker-archive tarball into the cluster's containerd.
func (c *cluster) importImage(tarball string) {
	c.t.Helper()
	sock := filepath.Join(c.dir, "containerd", "containerd.sock")
	out, err := exec.Command("ctr", "--address", sock, "-n", "k8s.io", "images", "import", tarball).CombinedOutput()
	if err != nil {
		c.t.Fatalf("ctr images import %s: %v: %s", tarball, err, out)
	}
}

// waitReady waits until every pod matching selector in ns is Ready and there are n of them.
func (c *cluster) waitReady(ns, selector string, n int, timeout time.Duration) []pod {
	c.t.Helper()
	var pods []pod
	testenv.WaitEvery(c.t, timeout, time.Second, fmt.Sprintf("%d Ready pods %s in %s", n, selector, ns), func() bool {
		var err error
		pods, err = c.pods(ns, selector)
		if err != nil || len(pods) != n {
			return false
		}
		for _, p := range pods {
			if !p.ready() {
				return false
			}
		}
		return true
	})
	return pods
}
