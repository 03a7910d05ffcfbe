package coordinator

import (
	"strconv"
	"testing"
	"time"

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
