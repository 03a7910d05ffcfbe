package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"flotilla/cluster"
	"flotilla/coordinator"
	"flotilla/internal/clusteropt"
	"flotilla/internal/testenv"
)

// runCoordEnv is runCoord with an environment.
func runCoordEnv(t *testing.T, envVars map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &cmdEnv{stdout: &out, stderr: &errb, getenv: func(k string) string { return envVars[k] }}
	code = run(context.Background(), env, noDHT(args))
	return code, out.String(), errb.String()
}

// newClusterKey returns a new key and a file holding it.
func newClusterKey(t *testing.T) (cluster.Key, string) {
	t.Helper()
	k, err := cluster.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cluster.key")
	if err := os.WriteFile(path, []byte(k.Text()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return k, path
}

// startNodeMember starts an in-process cluster member that advertises what
// a swarm node does, bound to bind.
func startNodeMember(t *testing.T, key cluster.Key, name, bind string, join ...string) (*cluster.Cluster, error) {
	t.Helper()
	cfg := cluster.DefaultConfig()
	cfg.Name, cfg.BindAddr, cfg.Key, cfg.Join, cfg.Profile = name, bind, key, join, cluster.ProfileLocal
	cfg.JoinRetry, cfg.JoinRetryMax = 50*time.Millisecond, 200*time.Millisecond
	cfg.Meta = cluster.Meta{Role: cluster.RoleSwarmNode, DelegateAddr: "127.0.0.1:7001", Version: "test-9", Slots: 33}
	c, err := cluster.Start(cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

type nodeRow struct {
	Name, Role, Gossip, Delegate, Version string
	Slots                                 int
	Bandwidth                             int64
}

// TestNodesListsMembers runs `coord nodes` against a cluster of a swarm
// node and a coordinator (a coordinator.Coordinator joined the way coord
// download joins, advertising its slots), with the key in a file and then in FLOTILLA_CLUSTER_KEY.
func TestNodesListsMembers(t *testing.T) {
	key, keyFile := newClusterKey(t)
	node, err := startNodeMember(t, key, "node-a", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := coordinator.New(coordinator.Config{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cfg, err := clusterConfig(clusteropt.Options{Listen: "127.0.0.1:0", Join: node.Addr().String(), Slots: 80},
		key, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	me, err := c.JoinCluster(cfg)
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the coordinator to join the node", func() bool { return len(node.Members()) == 2 })
	coordName := me.Name

	code, out, errs := runCoord(t, "nodes", "--join", node.Addr().String(), "--cluster-key-file", keyFile, "--timeout", "10s")
	if code != 0 {
		t.Fatalf("coord nodes: code %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "NAME ROLE GOSSIP DELEGATE VERSION SLOTS" {
		t.Fatalf("want a header and two members:\n%s", out)
	}
	rows := map[string][]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		rows[f[0]] = f
	}
	if got, want := strings.Join(rows["node-a"], " "), "node-a swarmnode "+node.Addr().String()+" 127.0.0.1:7001 test-9 33"; got != want {
		t.Errorf("node row %q, want %q", got, want)
	}
	// The coordinator has no delegate endpoint: its columns shift left.
	if got, want := strings.Join(rows[coordName], " "), coordName+" coordinator "+me.Addr.String()+" "+version+" 80"; got != want {
		t.Errorf("coordinator row %q, want %q", got, want)
	}

	// The first query's own member leaves as it exits; until the node has
	// seen it go, the second query would list it too.
	testenv.WaitFor(t, 10*time.Second, "the first query's member to leave", func() bool { return len(node.Members()) == 2 })
	code, out, errs = runCoordEnv(t, map[string]string{cluster.KeyEnv: key.Text()},
		"nodes", "--join", node.Addr().String(), "--json", "--timeout", "10s")
	if code != 0 {
		t.Fatalf("coord nodes --json with %s: code %d\nstderr:\n%s", cluster.KeyEnv, code, errs)
	}
	var got []nodeRow
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	want := map[string]nodeRow{
		"node-a":  {"node-a", "swarmnode", node.Addr().String(), "127.0.0.1:7001", "test-9", 33, 0},
		coordName: {coordName, "coordinator", me.Addr.String(), "", version, 80, 0},
	}
	if len(got) != len(want) {
		t.Fatalf("--json: %d members, want %d:\n%s", len(got), len(want), out)
	}
	for _, r := range got {
		if r != want[r.Name] {
			t.Errorf("--json row %+v, want %+v", r, want[r.Name])
		}
	}
}

// TestNodesJoinWithoutPort: `coord nodes --join HOST` asks HOST's port 7946,
// not the random port `coord nodes` binds for itself.
func TestNodesJoinWithoutPort(t *testing.T) {
	key, keyFile := newClusterKey(t)
	const ip = "127.0.0.46"
	node, err := startNodeMember(t, key, "node-b", net.JoinHostPort(ip, "7946"))
	if err != nil {
		testenv.Unavailable(t, "cannot bind the default gossip port on %s (in use?): %v", ip, err)
	}
	code, out, errs := runCoord(t, "nodes", "--join", ip, "--cluster-key-file", keyFile, "--timeout", "10s")
	if code != 0 || !strings.Contains(out, "node-b") || !strings.Contains(out, node.Addr().String()) {
		t.Fatalf("coord nodes --join %s: code %d\nstdout:\n%s\nstderr:\n%s", ip, code, out, errs)
	}
}

func TestNodesErrors(t *testing.T) {
	if code, _, errs := runCoord(t, "nodes"); code != 2 || !strings.Contains(errs, "--join") {
		t.Errorf("no --join: code %d, stderr %q", code, errs)
	}
	if code, _, errs := runCoord(t, "nodes", "--join", "127.0.0.1:1"); code != 1 || !strings.Contains(errs, "coord keygen") {
		t.Errorf("no key: code %d, stderr %q", code, errs)
	}
	// Nobody answers: a clear error after --timeout.
	_, keyFile := newClusterKey(t)
	port := testenv.FreePort(t, "127.0.0.1")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	code, _, errs := runCoord(t, "nodes", "--join", addr, "--cluster-key-file", keyFile, "--timeout", "500ms")
	if code != 1 || !strings.Contains(errs, "could not join "+addr) || strings.Count(errs, "\n") != 1 {
		t.Errorf("nobody there: code %d, stderr %q", code, errs)
	}
}
