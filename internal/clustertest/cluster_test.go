package clustertest

import (
	"strings"
	"testing"
	"time"

	"flotilla/internal/lab"
)

// Rates and sizes: every cluster host's WAN is capped at rate, so one host
// alone gets rate/8 MB/s; a 64 MiB download by 4 hosts takes ~8 s at
// 16 Mbit/s, long enough to act at 30-40%.
const (
	rate    = 16
	size    = 64 << 20
	piece   = 256 << 10
	timeout = 100 * time.Second
)

// requireContributed checks that every named swarm delivered pieces.
func requireContributed(t *testing.T, c map[string]lab.Contribution, names ...string) {
	t.Helper()
	for _, n := range names {
		if c[n].Pieces == 0 {
			t.Errorf("%s contributed no pieces (completion summary %v)", n, c)
		}
	}
}

// TestClusterMultiFile: coordinator + 3 nodes download a multi-file
// torrent; the result is byte-identical and every node contributed.
func TestClusterMultiFile(t *testing.T) {
	e := newEnv(t, envConfig{hosts: []string{"coord", "node1", "node2", "node3"}, rateMbit: rate,
		payload: multiFile("multi", size), piece: piece, timeout: timeout})
	coord := e.startCoord("coord")
	for _, n := range []string{"node1", "node2", "node3"} {
		e.startNode(n, e.keyFile)
	}
	c := e.waitDone(coord, 60*time.Second)
	requireContributed(t, c, "node1", "node2", "node3")
	if len(linesMatching(coord, "delegating to swarm node")) < 3 {
		t.Errorf("coordinator did not delegate to 3 nodes")
	}
}

// TestClusterNodeKilled: kill -9 of a node at ~40%; the download still
// completes, correct, and the dead node's lease returns to the pool.
func TestClusterNodeKilled(t *testing.T) {
	e := newEnv(t, envConfig{hosts: []string{"coord", "node1", "node2", "node3"}, rateMbit: rate,
		payload: multiFile("killed", size), piece: piece, timeout: timeout})
	coord := e.startCoord("coord")
	nodes := map[string]*lab.Proc{}
	for _, n := range []string{"node1", "node2", "node3"} {
		nodes[n] = e.startNode(n, e.keyFile)
	}
	at := e.waitPercent(coord, 40, 60*time.Second)
	nodes["node2"].Kill()
	killed := time.Now()
	t.Logf("killed node2 at %q", strings.TrimSpace(at)[:6])
	gone, err := lab.WaitLine(e.ctx, coord, 30*time.Second, func(l string) bool {
		return strings.Contains(l, "lease returns to the pool") && strings.Contains(l, "node2")
	})
	if err != nil {
		t.Errorf("coordinator never returned node2's lease to the pool: %v", err)
	} else {
		t.Logf("%v after the kill: %s", time.Since(killed).Round(10*time.Millisecond), gone)
	}
	c := e.waitDone(coord, 60*time.Second)
	requireContributed(t, c, "node1", "node3")
}

// TestClusterLateJoin: a node that joins at ~30% receives work.
func TestClusterLateJoin(t *testing.T) {
	e := newEnv(t, envConfig{hosts: []string{"coord", "node1", "late"}, rateMbit: rate,
		payload: multiFile("late", size), piece: piece, timeout: timeout})
	coord := e.startCoord("coord")
	e.startNode("node1", e.keyFile)
	e.waitPercent(coord, 30, 60*time.Second)
	late := e.startNode("late", e.keyFile)
	e.waitJoined(late)
	c := e.waitDone(coord, 60*time.Second)
	requireContributed(t, c, "node1", "late")
}
