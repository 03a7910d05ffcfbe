package coordinator

import (
	"bytes"
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

	// The node's jobs get the seeder only once it holds both (as
	// swarmnode's tracker announces would give it peers).
	var mu sync.Mutex
	var waiting []func([]netip.AddrPort)
	dln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	scfg := delegate.DefaultServerConfig()
	scfg.Key, scfg.Name, scfg.Listener, scfg.DataDir = key, "node1", dln, t.TempDir()
	scfg.PeerListen = "127.0.0.1:0"
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

	testenv.WaitFor(t, 30*time.Second, "the node running both jobs at once", func() bool {
		return srv.Stats().ActiveJobs == 2
	})
	for _, j := range []*Job{jobA, jobB} {
		ev, ok := nextEvent(t, j, 60*time.Second).(Completed)
		if !ok {
			t.Fatalf("job %s: %#v, want Completed", j.cfg.Torrent.Info.Name, ev)
		}
		delivered := 0
		for _, w := range ev.Status.Workers {
			t.Logf("job %s worker %s: %d pieces delivered", j.cfg.Torrent.Info.Name, w.Name, w.Delivered)
			if w.Name == "node1" {
				delivered = w.Delivered
			}
		}
		if delivered == 0 {
			t.Errorf("job %s: the node delivered no piece", j.cfg.Torrent.Info.Name)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []struct {
		dir, name string
		want      []byte
	}{{dirA, "a", payloadA}, {dirB, "b", payloadB}} {
		got, err := os.ReadFile(filepath.Join(f.dir, f.name, "data.bin"))
		if err != nil || !bytes.Equal(got, f.want) {
			t.Errorf("torrent %s: downloaded file differs from the payload (err %v)", f.name, err)
		}
	}
	if s := srv.Stats(); s.Sessions != 1 || s.Jobs != 2 {
		t.Errorf("node stats %+v, want one session carrying both jobs", s)
	}
	// The node's swarms also dial the coordinator's listener, each for
	// its torrent.
	t.Logf("coordinator's incoming connections: %+v", c.Incoming())
}
