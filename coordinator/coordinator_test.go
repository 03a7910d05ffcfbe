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
	key, err := cluster.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ccfg := cluster.DefaultConfig()
	ccfg.Name, ccfg.BindAddr, ccfg.Key, ccfg.Profile = "coord", "127.0.0.1:0", key, cluster.ProfileLocal
	ccfg.Meta = cluster.Meta{Role: cluster.RoleCoordinator, Slots: 80}
	me, err := c.JoinCluster(ClusterConfig{Cluster: ccfg})
	if err != nil {
		t.Fatal(err)
	}
	if me.Name != "coord" || !me.Addr.IsValid() {
		t.Fatalf("JoinCluster: %+v", me)
	}

	closed := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t, "127.0.0.1")) // nothing listens there
	ncfg := cluster.DefaultConfig()
	ncfg.Name, ncfg.BindAddr, ncfg.Key, ncfg.Profile = "node1", "127.0.0.1:0", key, cluster.ProfileLocal
	ncfg.Join, ncfg.JoinRetry, ncfg.JoinRetryMax = []string{me.Addr.String()}, 50*time.Millisecond, 200*time.Millisecond
	ncfg.Meta = cluster.Meta{Role: cluster.RoleSwarmNode, DelegateAddr: closed, Slots: 10}
	node, err := cluster.Start(ncfg)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()

	switch ev := nextEvent(t, j, 20*time.Second).(type) {
	case NodeDialFailed:
		if ev.Name != "node1" || ev.Addr != closed || ev.Err == nil {
			t.Errorf("NodeDialFailed %+v, want node1 at %s with its error", ev, closed)
		}
	default:
		t.Fatalf("event %#v, want NodeDialFailed", ev)
	}
}
