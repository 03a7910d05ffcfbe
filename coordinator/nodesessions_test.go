package coordinator

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"flotilla/cluster"
	"flotilla/delegate"
	"flotilla/internal/testenv"
	"flotilla/metainfo"
	"flotilla/swarm"
)

// startTestNode joins c to a fresh local cluster and starts a swarm node
// in it: a real delegate server whose jobs run real local peer swarms.
// mod adjusts the server's config (OnJob, caps).
func startTestNode(t *testing.T, c *Coordinator, mod func(*delegate.ServerConfig)) *delegate.Server {
	t.Helper()
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
	dln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	scfg := delegate.DefaultServerConfig()
	scfg.Key, scfg.Name, scfg.Listener, scfg.DataDir = key, "node1", dln, t.TempDir()
	scfg.PeerListen = "127.0.0.1:0"
	if mod != nil {
		mod(&scfg)
	}
	srv, err := delegate.NewServer(scfg)
	if err != nil {
		dln.Close()
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })
	ncfg := cluster.DefaultConfig()
	ncfg.Name, ncfg.BindAddr, ncfg.Key, ncfg.Profile = "node1", "127.0.0.1:0", key, cluster.ProfileLocal
	ncfg.Join, ncfg.JoinRetry, ncfg.JoinRetryMax = []string{me.Addr.String()}, 50*time.Millisecond, 200*time.Millisecond
	ncfg.Meta = cluster.Meta{Role: cluster.RoleSwarmNode, DelegateAddr: dln.Addr().String(), Slots: 10}
	node, err := cluster.Start(ncfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	go func() {
		for range node.Events() {
		}
	}()
	return srv
}

// testTorrent is a small torrent with its payload, seeded by a seeder.
type testTorrent struct {
	tor     *metainfo.Torrent
	payload []byte
	dir     string // the downloader's
}

// loopbackPeers lets every peer of a test, all on 127.0.0.1, connect at
// once (the router's per-address cap on connections being identified
// would otherwise evict some, which redial only after a back-off).
func loopbackPeers(c *Config) { c.Incoming.MaxPendingPerIP = 128 }

// newSeededTorrents makes n small distinct torrents, all seeded by one
// seeder Coordinator, whose address it returns.
func newSeededTorrents(t *testing.T, n, pieces int) ([]*testTorrent, netip.AddrPort) {
	t.Helper()
	seeder := newTestCoordinator(t, loopbackPeers)
	out := make([]*testTorrent, n)
	for i := range out {
		line := []byte(fmt.Sprintf("torrent %02d of %d, piece data; ", i, n))
		payload := bytes.Repeat(line, pieces<<16/len(line)+1)[:pieces<<16-1000]
		name := fmt.Sprintf("t%02d", i)
		tor, seedDir := newPayloadTorrent(t, name, payload)
		seedJob(t, seeder, tor, seedDir)
		out[i] = &testTorrent{tor: tor, payload: payload, dir: t.TempDir()}
	}
	return out, seeder.Addr().AddrPort()
}

// waitCompleted reads j's events until Completed (other events go to
// seen) and returns how many pieces the node delivered.
func waitCompleted(t *testing.T, j *Job, timeout time.Duration, seen func(Event)) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		switch ev := nextEvent(t, j, time.Until(deadline)).(type) {
		case Completed:
			for _, w := range ev.Status.Workers {
				if w.Name == "node1" {
					return w.Delivered
				}
			}
			return 0
		case Failed:
			t.Fatalf("job %s failed: %v", j.cfg.Torrent.Info.Name, ev.Err)
		default:
			if seen != nil {
				seen(ev)
			}
		}
	}
}

// checkFile checks a downloaded torrent against its payload.
func (tt *testTorrent) checkFile(t *testing.T) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(tt.dir, tt.tor.Info.Name, "data.bin"))
	if err != nil || !bytes.Equal(got, tt.payload) {
		t.Errorf("torrent %s: downloaded file differs from the payload (err %v)", tt.tor.Info.Name, err)
	}
}

// nodeWorker is the node's worker in j's status, if any.
func nodeWorker(j *Job) (swarm.WorkerStatus, bool) {
	for _, w := range j.dl.Status().Workers {
		if w.Name == "node1" {
			return w, true
		}
	}
	return swarm.WorkerStatus{}, false
}

// TestNodeSessionCarriesTwentyJobs: twenty jobs of one Coordinator run at
// once on one swarm node over one delegate session. Only the node's jobs
// get the seeder, once it holds all twenty, so every piece of every
// torrent comes through that session; all downloads are byte-identical.
// The node's twenty swarms dialing us at once are all identified.
func TestNodeSessionCarriesTwentyJobs(t *testing.T) {
	const n = 20
	tts, seeder := newSeededTorrents(t, n, 3)
	c := newTestCoordinator(t) // the node's address is a member's: MaxPendingPerMember
	jobs := make([]*Job, n)
	for i, tt := range tts {
		jobs[i] = startTestJob(t, c, tt.tor, tt.dir, nil)
	}
	var mu sync.Mutex
	var waiting []func([]netip.AddrPort)
	srv := startTestNode(t, c, func(s *delegate.ServerConfig) {
		s.MaxJobs, s.MaxJobsPerSession = n, n
		s.Swarm.MaxPeers = 4 * n // four peers per job
		s.OnJob = func(j delegate.JobInfo) func() {
			mu.Lock()
			defer mu.Unlock()
			if waiting = append(waiting, j.AddPeers); len(waiting) == n {
				for _, add := range waiting {
					add([]netip.AddrPort{seeder})
				}
			}
			return nil
		}
	})
	testenv.WaitFor(t, 60*time.Second, "the node running all twenty jobs", func() bool {
		return srv.Stats().ActiveJobs == n
	})
	if st := srv.Stats(); st.Sessions != 1 || st.ActiveSessions != 1 {
		t.Fatalf("node stats %+v, want one session carrying every job", st)
	}
	for i, j := range jobs {
		if d := waitCompleted(t, j, 120*time.Second, nil); d == 0 {
			t.Errorf("job %s: the node delivered no piece", j.cfg.Torrent.Info.Name)
		}
		tts[i].checkFile(t)
	}
	if st := srv.Stats(); st.Sessions != 1 || st.Jobs != n {
		t.Errorf("node stats %+v, want one session that carried %d jobs", st, n)
	}
	// The node's swarms dialed us at once from one address: a member's,
	// so none was evicted while pending (MaxPendingPerMember).
	if st := c.Incoming(); st.Evicted != 0 {
		t.Errorf("incoming %+v: connections from the node evicted", st)
	}
}

// TestNodeJobCapRetry: a node that runs its maximum of jobs (one) refuses
// the second job clearly (NodeDialFailed with ErrNodeBusy) and keeps the
// session; the coordinator retries after its back-off and gets the node
// once the first job is done. Every piece comes through the node.
func TestNodeJobCapRetry(t *testing.T) {
	tts, seeder := newSeededTorrents(t, 2, 3)
	c := newTestCoordinator(t)
	jobs := []*Job{startTestJob(t, c, tts[0].tor, tts[0].dir, nil), startTestJob(t, c, tts[1].tor, tts[1].dir, nil)}
	srv := startTestNode(t, c, func(s *delegate.ServerConfig) {
		s.MaxJobs = 1
		s.OnJob = func(j delegate.JobInfo) func() {
			j.AddPeers([]netip.AddrPort{seeder})
			return nil
		}
	})
	busy := 0
	seen := func(ev Event) {
		if f, ok := ev.(NodeDialFailed); ok {
			t.Logf("%s: %v", f.Name, f.Err)
			if errors.Is(f.Err, delegate.ErrNodeBusy) {
				busy++
			}
		}
	}
	for i, j := range jobs {
		if d := waitCompleted(t, j, 60*time.Second, seen); d == 0 {
			t.Errorf("job %s: the node delivered no piece", j.cfg.Torrent.Info.Name)
		}
		tts[i].checkFile(t)
	}
	st := srv.Stats()
	if busy == 0 || st.Busy == 0 {
		t.Errorf("no job was refused as busy (events %d, node stats %+v)", busy, st)
	}
	if st.Sessions != 1 || st.Jobs != 2 {
		t.Errorf("node stats %+v, want one session that carried both jobs", st)
	}
}

// TestNodeSessionCloseOneJob: closing one job ends its work on the node
// only; the other job goes on over the same session and completes
// through the node, which gets the seeder only once the first job ended
// there.
func TestNodeSessionCloseOneJob(t *testing.T) {
	tts, seeder := newSeededTorrents(t, 2, 3)
	c := newTestCoordinator(t)
	jobA := startTestJob(t, c, tts[0].tor, tts[0].dir, nil)
	jobB := startTestJob(t, c, tts[1].tor, tts[1].dir, nil)
	var mu sync.Mutex
	var addB func([]netip.AddrPort)
	aEnded := false
	srv := startTestNode(t, c, func(s *delegate.ServerConfig) {
		s.OnJob = func(j delegate.JobInfo) func() {
			mu.Lock()
			defer mu.Unlock()
			if j.InfoHash != tts[0].tor.InfoHash {
				if addB = j.AddPeers; aEnded {
					addB([]netip.AddrPort{seeder})
				}
				return nil
			}
			return func() {
				mu.Lock()
				defer mu.Unlock()
				if aEnded = true; addB != nil {
					addB([]netip.AddrPort{seeder})
				}
			}
		}
	})
	testenv.WaitFor(t, 30*time.Second, "the node running both jobs", func() bool { return srv.Stats().ActiveJobs == 2 })
	if err := jobA.Close(); err != nil {
		t.Fatal(err)
	}
	if d := waitCompleted(t, jobB, 60*time.Second, nil); d == 0 {
		t.Error("job B: the node delivered no piece")
	}
	tts[1].checkFile(t)
	if st := srv.Stats(); st.Sessions != 1 || st.Stops != 0 {
		t.Errorf("node stats %+v, want the one session still open", st)
	}
}

// TestNodeSessionKilled: the node holding leases of two jobs dies; the
// session drops, both jobs' node workers fail and their sub-chiefs give
// the leases to the local swarm, which completes both.
func TestNodeSessionKilled(t *testing.T) {
	tts, seeder := newSeededTorrents(t, 2, 6)
	c := newTestCoordinator(t)
	jobs := []*Job{startTestJob(t, c, tts[0].tor, tts[0].dir, nil), startTestJob(t, c, tts[1].tor, tts[1].dir, nil)}
	srv := startTestNode(t, c, nil) // its jobs get no peer: they hold their leases
	testenv.WaitFor(t, 30*time.Second, "the node holding leases of both jobs", func() bool {
		for _, j := range jobs {
			if w, ok := nodeWorker(j); !ok || w.Leased == 0 {
				return false
			}
		}
		return true
	})
	if st := srv.Stats(); st.Sessions != 1 || st.ActiveJobs != 2 {
		t.Fatalf("node stats %+v, want one session with both jobs", st)
	}
	srv.Close() // the node dies with its session
	for _, j := range jobs {
		testenv.WaitFor(t, 15*time.Second, "the node's worker gone from the sub-chief", func() bool {
			w, ok := nodeWorker(j)
			return !ok || w.State == swarm.WorkerGone
		})
		j.dl.AddPeers([]netip.AddrPort{seeder})
	}
	for i, j := range jobs {
		waitCompleted(t, j, 60*time.Second, nil)
		tts[i].checkFile(t)
	}
}
