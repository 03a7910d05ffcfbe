package coordinator

import (
	"bytes"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"flotilla/delegate"
	"flotilla/internal/testenv"
)

// TestNodeHoldsTwoTorrents: two jobs of one Coordinator each run a
// delegate job on the same swarm node, over the Coordinator's one session
// to it; the node runs a job (a real local peer swarm) for each torrent
// at once. Neither the coordinator nor the node gets a peer until the
// node holds both jobs; then only the node gets the seeder, so every
// piece of both torrents comes through that session. Both downloads are
// byte-identical.
func TestNodeHoldsTwoTorrents(t *testing.T) {
	payloadA := bytes.Repeat([]byte("node torrent A "), 40000)
	payloadB := bytes.Repeat([]byte("node torrent B, other "), 25000)
	torA, seedA := newPayloadTorrent(t, "a", payloadA)
	torB, seedB := newPayloadTorrent(t, "b", payloadB)
	seeder := newTestCoordinator(t)
	seedJob(t, seeder, torA, seedA)
	seedJob(t, seeder, torB, seedB)
	seederAddr := seeder.Addr().AddrPort()

	c := newTestCoordinator(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	jobA := startTestJob(t, c, torA, dirA, nil)
	jobB := startTestJob(t, c, torB, dirB, nil)

	// The node's jobs get the seeder only once it holds both (as
	// swarmnode's tracker announces would give it peers).
	var mu sync.Mutex
	var waiting []func([]netip.AddrPort)
	srv := startTestNode(t, c, func(scfg *delegate.ServerConfig) {
		scfg.OnJob = func(j delegate.JobInfo) func() {
			mu.Lock()
			defer mu.Unlock()
			if waiting = append(waiting, j.AddPeers); len(waiting) == 2 {
				for _, add := range waiting {
					add([]netip.AddrPort{seederAddr})
				}
			}
			return nil
		}
	})

	testenv.WaitFor(t, 30*time.Second, "the node running both jobs at once", func() bool {
		return srv.Stats().ActiveJobs == 2
	})
	for _, j := range []*Job{jobA, jobB} {
		ev, ok := nextEvent(t, j, 60*time.Second).(Completed)
		if !ok {
			t.Fatalf("job %s: %#v, want Completed", j.cfg.Torrent.Info.Name, ev)
		}
		for _, w := range ev.Status.Workers {
			t.Logf("job %s worker %s: %d pieces delivered", j.cfg.Torrent.Info.Name, w.Name, w.Delivered)
		}
		if delivered(ev.Status, "node1") == 0 {
			t.Errorf("job %s: the node delivered no piece", j.cfg.Torrent.Info.Name)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
	checkDownload(t, dirA, filepath.Join("a", "data.bin"), payloadA)
	checkDownload(t, dirB, filepath.Join("b", "data.bin"), payloadB)
	if s := srv.Stats(); s.Sessions != 1 || s.Jobs != 2 {
		t.Errorf("node stats %+v, want one session carrying both jobs", s)
	}
	// The node's swarms also dial the coordinator's listener, each for
	// its torrent.
	t.Logf("coordinator's incoming connections: %+v", c.Incoming())
}
