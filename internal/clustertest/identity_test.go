package clustertest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flotilla/cluster"
	"flotilla/delegate"
	"flotilla/internal/lab"
	"flotilla/metainfo"
)

// TestClusterCoordinatorIdentity: with a coordinator key (coord keygen
// --coordinator), the coordinator commands the nodes and the download
// completes, while a compromised node holding the cluster key cannot
// command another node: its delegate session is refused with
// ErrNotCoordinator and the node runs no job for it.
func TestClusterCoordinatorIdentity(t *testing.T) {
	e := newEnv(t, envConfig{hosts: []string{"coord", "node1", "node2"}, rateMbit: rate,
		payload: multiFile("identity", size), piece: piece, timeout: timeout})
	keyPath := filepath.Join(e.dir, "coordinator.key")
	var pub, errb bytes.Buffer
	cmd := exec.CommandContext(e.ctx, e.coordBin, "keygen", "--coordinator", keyPath)
	cmd.Stdout, cmd.Stderr = &pub, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("coord keygen --coordinator: %v: %s", err, errb.String())
	}
	pubPath := filepath.Join(e.dir, "coordinator.pub")
	if err := os.WriteFile(pubPath, pub.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	coord, err := lab.StartCoord(e.ctx, e.cl, e.coordHost(), lab.CoordSpec{
		Bin: e.coordBin, Torrent: e.sw.Torrent.Path, Out: e.out, KeyFile: e.keyFile,
		LogPath: filepath.Join(e.dir, "logs", "coord.log"), Verbose: true,
		Extra: []string{"--coordinator-key-file", keyPath},
	})
	if err != nil {
		t.Fatal(err)
	}
	var nodes []*lab.Proc
	for _, n := range []string{"node1", "node2"} {
		p, err := lab.StartNode(e.ctx, e.cl, e.host(n), lab.NodeSpec{
			Bin: e.nodeBin, Name: n, Join: e.joinAddr(), KeyFile: e.keyFile,
			DataDir: filepath.Join(e.dir, "data-"+n), LogPath: filepath.Join(e.dir, "logs", n+".log"), Verbose: true,
			Extra: []string{"--coordinator-pubkey-file", pubPath},
		})
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, p)
	}
	e.waitJoined(nodes[0])

	// node2, compromised: it holds the cluster key and tries to command
	// node1 from its own host.
	tor, err := metainfo.Load(e.sw.Torrent.Path)
	if err != nil {
		t.Fatal(err)
	}
	key, err := cluster.LoadKey(e.keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("%s:%d", e.host("node1").ClusterAddr, lab.DefaultGossipPort+1)
	conn, err := e.host("node2").DialContext(e.ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	job := delegate.JobSpec{InfoHash: tor.InfoHash, InfoBytes: tor.InfoBytes, Trackers: [][]string{{"http://203.0.113.1/announce"}}}
	rs, err := delegate.Client(e.ctx, conn, key, job, delegate.DefaultClientConfig())
	conn.Close()
	if err == nil {
		rs.Close()
		t.Fatal("a cluster member without the coordinator key opened a session to node1")
	}
	if !errors.Is(err, delegate.ErrNotCoordinator) {
		t.Fatalf("impostor: %v, want ErrNotCoordinator", err)
	}
	t.Logf("impostor refused: %v", err)

	c := e.waitDone(coord, 60*time.Second)
	requireContributed(t, c, "node1", "node2")
	if l := linesMatching(coord, "warning: no coordinator key"); len(l) > 0 {
		t.Errorf("the coordinator warns about a key it was given: %q", l[0])
	}
	if l := linesMatching(nodes[0], "203.0.113.1"); len(l) > 0 {
		t.Errorf("node1 acted on the impostor's job: %q", l[0])
	}
	if l := linesMatching(nodes[0], "not the coordinator"); len(l) == 0 {
		t.Errorf("node1's log does not show the refusal")
	} else {
		t.Logf("node1: %s", strings.TrimSpace(l[0]))
	}
}
