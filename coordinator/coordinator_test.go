package coordinator

import (
	"strconv"
	"testing"
	"time"

	"flotilla/cluster"
	"flotilla/internal/testenv"
)

// TestJoinClusterReachesRunningJob: a job started before the coordinator
// joins a cluster hears of a swarm node that joins afterwards, and
// reports the failed dial to its (closed) delegate endpoint with the
// node's name and address.
func TestJoinClusterReachesRunningJob(t *testing.T) {
	c := newTestCoordinator(t)
	j := startTestJob(t, c, newTestTorrent(t, nil), t.TempDir(), nil)
	key, join := joinTestCluster(t, c)

	closed := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t, "127.0.0.1")) // nothing listens there
	startTestMember(t, key, join, closed)

	switch ev := nextEvent(t, j, 20*time.Second).(type) {
	case NodeDialFailed:
		if ev.Name != "node1" || ev.Addr != closed || ev.Err == nil {
			t.Errorf("NodeDialFailed %+v, want node1 at %s with its error", ev, closed)
		}
	default:
		t.Fatalf("event %#v, want NodeDialFailed", ev)
	}
}

// Leave, called before the jobs close, says goodbye at once: the nodes
// see the coordinator leave (not fail) while it still closes, and Close
// then waits for that goodbye instead of starting another. Without a
// cluster, Leave does nothing.
func TestLeaveBeforeClose(t *testing.T) {
	newTestCoordinator(t).Leave() // no cluster: nothing to do, no hang
	c := newTestCoordinator(t)
	key, addr := joinTestCluster(t, c)
	ncfg := cluster.DefaultConfig()
	ncfg.Name, ncfg.BindAddr, ncfg.Key, ncfg.Profile = "node1", "127.0.0.1:0", key, cluster.ProfileLocal
	ncfg.Join = []string{addr}
	ncfg.Meta = cluster.Meta{Role: cluster.RoleSwarmNode, DelegateAddr: "127.0.0.1:1", Slots: 1}
	node, err := cluster.Start(ncfg)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	wait := func(what string, ok func(cluster.Event) bool) cluster.Event {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case ev := <-node.Events():
				if ev.Member.Name == "coord" && ok(ev) {
					return ev
				}
			case <-deadline:
				t.Fatalf("node1 did not see the coordinator %s", what)
			}
		}
	}
	wait("join", func(ev cluster.Event) bool { return ev.Kind == cluster.EventJoin })
	// A member not yet known to be alive would not be waited for.
	testenv.WaitFor(t, 10*time.Second, "the coordinator to know node1", func() bool {
		known := false
		c.do(func() { known = len(c.members.c.Members()) == 2 })
		return known
	})
	c.Leave()
	ev := wait("go", func(ev cluster.Event) bool { return ev.Kind == cluster.EventLeave || ev.Kind == cluster.EventFail })
	if ev.Kind != cluster.EventLeave || ev.Member.State != cluster.StateLeft {
		t.Fatalf("node1 saw %v (state %v), want a leave", ev.Kind, ev.Member.State)
	}
	c.Leave() // again: the goodbye is said once
	if err := c.Close(); err != nil {
		t.Fatalf("Close after Leave: %v", err)
	}
}
