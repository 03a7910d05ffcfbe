package clustertest

import (
	"strings"
	"testing"
	"time"

	"flotilla/internal/lab"
)

// TestClusterQuarantineRejoin: a node quarantined for corrupt pieces
// leaves, then comes back from the same host under its own name and under
// a new one. The coordinator dials neither (it says why) and gives them no
// lease; the download completes, correct. Before quarantine was keyed by
// the node's addresses, both were dialed and given work again.
func TestClusterQuarantineRejoin(t *testing.T) {
	e := newEnv(t, envConfig{hosts: []string{"coord", "node1", "evil"}, rateMbit: 8,
		payload: multiFile("rejoin", size), piece: piece, timeout: timeout})
	coord := e.startCoord("coord")
	e.startNode("node1", e.keyFile)
	evil := e.startHostileNode("evil")
	if _, err := lab.WaitLine(e.ctx, coord, 40*time.Second, func(l string) bool {
		return strings.HasPrefix(l, "cluster: swarm node evil (") && strings.Contains(l, "quarantined for the rest of this download")
	}); err != nil {
		t.Fatalf("the coordinator never reported the corrupting node quarantined: %v; hostile node log: %s", err, evil.Tail(600))
	}
	for _, name := range []string{"evil", "evil-renamed"} {
		evil.Kill()
		// Wait until the coordinator has seen it go, so that it comes back
		// as a new member (the case that used to forget).
		if _, err := lab.WaitLine(e.ctx, coord, 30*time.Second, func(l string) bool {
			return strings.Contains(l, "swarm node gone") && strings.Contains(l, "node="+evil.Name+" ")
		}); err != nil {
			t.Fatalf("the coordinator never noticed %s leave: %v", evil.Name, err)
		}
		evil = e.startHostileNodeOn("evil", name)
		if _, err := lab.WaitLine(e.ctx, coord, 30*time.Second, func(l string) bool {
			return strings.HasPrefix(l, "cluster: swarm node "+name+" (") && strings.Contains(l, "is not used")
		}); err != nil {
			t.Errorf("the coordinator did not refuse %s, back from a quarantined host: %v", name, err)
		}
	}
	c := e.waitDone(coord, 90*time.Second)
	requireContributed(t, c, "node1")
	sessions := len(linesMatching(coord, "delegating to swarm node", "node=evil"))
	jobs := 0
	for _, l := range strings.Split(evil.ReadLog(), "\n") {
		if strings.Contains(l, hostileNodeFmt+"job ") {
			jobs++
		}
	}
	t.Logf("sessions to evil*: %d; jobs on the last hostile node: %d", sessions, jobs)
	if sessions != 1 || jobs != 0 {
		t.Errorf("a quarantined host was given work again: %d delegate sessions to evil*, %d jobs on the renamed node", sessions, jobs)
	}
}
