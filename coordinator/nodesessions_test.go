package coordinator

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"flotilla/delegate"
	"flotilla/internal/testenv"
	"flotilla/swarm"
)

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

// TestNodeSessionWarm: a swarm node that joins is dialed at once, with no
// job asking for it, so it is usable (its session open) before any
// torrent needs it; the first job then runs on that session without
// dialing another.
func TestNodeSessionWarm(t *testing.T) {
	c := newTestCoordinator(t)
	srv := startTestNode(t, c, nil)
	var addr string
	testenv.WaitFor(t, 30*time.Second, "the node's session open without a job", func() bool {
		ci, ok := c.Cluster()
		if !ok {
			return false
		}
		for _, m := range ci.Members {
			if m.Name == "node1" {
				addr = m.Meta.DelegateAddr
				return ci.Sessions[addr].State == SessionOpen
			}
		}
		return false
	})
	testenv.WaitFor(t, 10*time.Second, "the node counting the session", func() bool { return srv.Stats().Sessions == 1 })
	if st := srv.Stats(); st.Jobs != 0 {
		t.Fatalf("node stats %+v, want no job", st)
	}
	tts, seeder := newSeededTorrents(t, 1, 2)
	j := startTestJob(t, c, tts[0].tor, tts[0].dir, []netip.AddrPort{seeder})
	waitCompleted(t, j, 60*time.Second, nil)
	tts[0].checkFile(t)
	if st := srv.Stats(); st.Sessions != 1 {
		t.Errorf("node stats %+v: the job dialed a session of its own", st)
	}
	srv.Close()
	testenv.WaitFor(t, 30*time.Second, "the closed node's session no longer open", func() bool {
		ci, _ := c.Cluster()
		return ci.Sessions[addr].State != SessionOpen
	})
}
