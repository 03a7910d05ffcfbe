package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"flotilla/internal/lab"
	"flotilla/internal/testenv"
	"flotilla/service"
)

var (
	nodeBuildOnce sync.Once
	nodeBin       string
	nodeBuildErr  error
)

// swarmnodeBinary builds cmd/swarmnode once per test binary run, beside
// the coord binary.
func swarmnodeBinary(t testing.TB) string {
	t.Helper()
	coord := coordBinary(t)
	nodeBuildOnce.Do(func() {
		nodeBin = filepath.Join(filepath.Dir(coord), "swarmnode")
		if out, err := exec.Command("go", "build", "-o", nodeBin, "flotilla/cmd/swarmnode").CombinedOutput(); err != nil {
			nodeBuildErr = fmt.Errorf("go build swarmnode: %v\n%s", err, out)
		}
	})
	if nodeBuildErr != nil {
		t.Fatal(nodeBuildErr)
	}
	return nodeBin
}

// TestServeClusterTwoTorrents: one coord serve in a cluster with two swarm
// nodes downloads two torrents from two swarms at once; both come out
// byte-identical, the swarm nodes work for the daemon's jobs, and
// /api/v1/nodes, coord nodes --server and /readyz show the cluster.
func TestServeClusterTwoTorrents(t *testing.T) {
	a := newSwarmLab(t, lab.PayloadSpec{Name: "a.bin", Seed: 51, Size: 24 << 20}, 1<<18, 1, "--max-upload-limit=3M")
	b := newSwarmLab(t, lab.PayloadSpec{Name: "b.bin", Seed: 53, Size: 24<<20 + 5}, 1<<18, 1, "--max-upload-limit=3M")
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "cluster.key")
	if out, err := runKeygenFile(t); err != nil {
		t.Fatal(err)
	} else if err := writeFile0600(keyFile, out); err != nil {
		t.Fatal(err)
	}
	gossip := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t, "127.0.0.1"))
	s := startServe(t, dir, "--max-active", "2", "--seed=true", "--seed-ratio", "0",
		"--cluster-listen", gossip, "--cluster-key-file", keyFile)
	for i, ip := range []string{"127.0.0.40", "127.0.0.41"} {
		name := fmt.Sprintf("node%d", i+1)
		startSwarmNode(t, gossip, keyFile, ip, name, filepath.Join(dir, name))
	}
	client := &service.Client{Server: strings.TrimSuffix(s.api, "/api/v1"), Token: serveToken}
	ctx := context.Background()
	testenv.WaitFor(t, time.Minute, "both swarm nodes in the daemon's cluster", func() bool {
		n, err := client.Nodes(ctx)
		return err == nil && n.Enabled && n.Joined && len(n.Members) == 3
	})
	resp, err := http.Get(client.Server + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/readyz in a joined cluster: %v %v", resp, err)
	}
	resp.Body.Close()
	if v := s.metricWith(t, "flotilla_cluster_joined", nil); v != 1 {
		t.Errorf("/metrics: cluster joined %v", v)
	}
	for _, n := range []string{"node1", "node2"} {
		if v := s.metricWith(t, "flotilla_node_up", map[string]string{"node": n, "role": "swarmnode"}); v != 1 {
			t.Errorf("/metrics: %s up %v", n, v)
		}
	}

	ja, jb := s.add(t, a.torrent.Path, ""), s.add(t, b.torrent.Path, "")
	sawNodes := map[string]bool{}
	for _, c := range []struct {
		id string
		l  *swarmLab
	}{{ja.ID, a}, {jb.ID, b}} {
		var d service.JobDetail
		testenv.WaitFor(t, 3*time.Minute, "job "+c.id+" complete", func() bool {
			d = s.show(t, c.id)
			for _, w := range d.Workers {
				if w.Name != "local" && w.Delivered > 0 {
					sawNodes[w.Name] = true
				}
			}
			if d.State == service.StateFailed {
				t.Fatalf("job %s failed: %s\n%s", c.id, d.Error, s.out.String())
			}
			return d.State == service.StateSeeding
		})
		if err := c.l.payload.Verify(d.DataDir); err != nil {
			t.Fatalf("job %s: %v", c.id, err)
		}
	}
	if len(sawNodes) == 0 {
		t.Errorf("no swarm node delivered a piece to either job")
	}
	t.Logf("swarm nodes that delivered pieces: %v", sawNodes)
	for _, id := range []string{ja.ID, jb.ID} { // the piece maps name the nodes that delivered
		var m service.PieceMap
		if code := s.do(t, "GET", "/torrents/"+id+"/pieces", nil, &m); code != 200 || len(m.Sources) != m.Pieces {
			t.Fatalf("pieces of %s: %d %+v", id, code, m)
		}
		for _, k := range m.Sources {
			if k != 255 && m.Names[k] != "local" && m.Names[k] != "disk" {
				delete(sawNodes, m.Names[k])
			}
		}
	}
	if len(sawNodes) > 0 {
		t.Errorf("the piece maps do not show the pieces of %v", sawNodes)
	}
	out, err := exec.Command(coordBinary(t), "nodes", "--server", client.Server, "--token-file", filepath.Join(dir, "token")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "node1") || !strings.Contains(string(out), "node2") {
		t.Fatalf("coord nodes --server: %v\n%s", err, out)
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	if code := s.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d\n%s", code, s.out.String())
	}
}

func writeFile0600(path string, b []byte) error { return os.WriteFile(path, b, 0o600) }

// runKeygenFile returns a new cluster key's text, from coord keygen.
func runKeygenFile(t *testing.T) ([]byte, error) {
	t.Helper()
	return exec.Command(coordBinary(t), "keygen").Output()
}

// startSwarmNode starts a swarm node on ip that joins gossip.
func startSwarmNode(t *testing.T, gossip, keyFile, ip, name, dataDir string) *coordProc {
	t.Helper()
	return startCoordCmd(t, exec.Command(swarmnodeBinary(t), "--join", gossip, "--cluster-listen", ip+":"+strconv.Itoa(testenv.FreePort(t, ip)),
		"--cluster-key-file", keyFile, "--listen", ip+":0", "--name", name, "--data", dataDir))
}
