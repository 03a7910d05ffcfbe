package coordinator

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"flotilla/delegate"
	"flotilla/internal/testenv"
	"flotilla/swarm"
	"flotilla/swarm/swarmtest"
)

// TestClusterSeeds: the cluster's nodes upload what they hold to the
// public swarm. A leecher outside the cluster, given only the nodes'
// addresses, receives from every node while the cluster downloads; the
// download seeds (JobConfig.Seed, coord download --seed), so once it is
// complete the nodes keep their jobs and seed what they hold until the
// job is closed, and the leecher completes. Both copies are
// byte-identical.
func TestClusterSeeds(t *testing.T) {
	tts, seeder := newSeededTorrents(t, 1, 48) // 3 MiB
	tt := tts[0]
	c := newTestCoordinator(t, loopbackPeers)
	job := startTestJob(t, c, tt.tor, tt.dir, nil, func(jc *JobConfig) { jc.Seed = true })

	names := []string{"node1", "node2"}
	// Each node reaches the seeder over a link of its own at 256 KiB/s:
	// the cluster's download takes about six seconds.
	links := map[string]netip.AddrPort{}
	for _, n := range names {
		links[n] = swarmtest.Throttle(t, net.TCPAddrFromAddrPort(seeder), 256<<10)
	}
	var mu sync.Mutex
	peerAddrs := map[string]netip.AddrPort{}
	key, join := joinTestCluster(t, c)
	nodes := map[string]*delegate.Server{}
	for _, name := range names {
		nodes[name] = startClusterNode(t, key, join, name, func(s *delegate.ServerConfig) {
			s.OnJob = func(j delegate.JobInfo) func() {
				j.AddPeers([]netip.AddrPort{links[name]})
				if a, ok := j.PeerAddr.(*net.TCPAddr); ok {
					mu.Lock()
					peerAddrs[name] = a.AddrPort()
					mu.Unlock()
				}
				return nil
			}
		})
	}
	uploaded := func() (min int64) {
		min = -1
		for _, n := range names {
			w, ok := workerNamed(job, n)
			if !ok {
				return 0
			}
			if min < 0 || w.Uploaded < min {
				min = w.Uploaded
			}
		}
		return min
	}
	testenv.WaitFor(t, 30*time.Second, "both nodes delivered pieces", func() bool {
		for _, n := range names {
			if w, ok := workerNamed(job, n); !ok || w.Delivered < 2 {
				return false
			}
		}
		return true
	})
	mu.Lock()
	var addrs []netip.AddrPort
	for _, a := range peerAddrs {
		addrs = append(addrs, a)
	}
	mu.Unlock()
	if len(addrs) != len(names) {
		t.Fatalf("node peer addresses %v", addrs)
	}
	leecher := newTestCoordinator(t, loopbackPeers)
	ltt := &testTorrent{tor: tt.tor, payload: tt.payload, dir: t.TempDir()}
	ljob := startTestJob(t, leecher, tt.tor, ltt.dir, addrs)

	testenv.WaitFor(t, 30*time.Second, "every node uploads to the leecher", func() bool { return uploaded() > 0 })
	if job.dl.Status().Complete {
		t.Fatal("the cluster's download completed before every node uploaded: nothing shows uploads while downloading")
	}
	waitCompleted(t, job, 60*time.Second, nil)
	tt.checkFile(t)
	// Seeding: the nodes keep their jobs.
	time.Sleep(500 * time.Millisecond) // (a stopped job would be gone by now)
	for n, srv := range nodes {
		if st := srv.Stats(); st.ActiveJobs != 1 {
			t.Fatalf("node %s after the download: %+v, want its job still seeding", n, st)
		}
	}
	for {
		ev := nextEvent(t, ljob, 60*time.Second)
		if _, ok := ev.(Completed); ok {
			break
		}
		if f, ok := ev.(Failed); ok {
			t.Fatalf("leecher: %v", f.Err)
		}
	}
	ltt.checkFile(t)
	// Told to stop: the nodes end their jobs.
	if err := job.Close(); err != nil {
		t.Fatal(err)
	}
	for n, srv := range nodes {
		testenv.WaitFor(t, 10*time.Second, "node "+n+" ends its job", func() bool { return srv.Stats().ActiveJobs == 0 })
	}
}

// workerNamed is the status of j's worker called name, if any.
func workerNamed(j *Job, name string) (swarm.WorkerStatus, bool) {
	for _, w := range j.dl.Status().Workers {
		if w.Name == name {
			return w, true
		}
	}
	return swarm.WorkerStatus{}, false
}
