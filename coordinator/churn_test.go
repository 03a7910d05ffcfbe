package coordinator

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"flotilla/cluster"
	"flotilla/delegate"
	"flotilla/internal/testenv"
	"flotilla/swarm"
	"flotilla/swarm/swarmtest"
)

// TestClusterChurn: swarm nodes come and go during a download. node1 is
// killed (its delegate server and membership close without a word),
// node2 stops cleanly (swarmnode's SIGTERM: Leave, then it leaves the
// cluster) and node4 and node5 join meanwhile. The download is
// byte-identical, and every piece node2 shipped before it went was
// accepted from it: none was fetched again from another node.
func TestClusterChurn(t *testing.T) {
	tts, seeder := newSeededTorrents(t, 1, 96) // 6 MiB
	tt := tts[0]
	c := newTestCoordinator(t, loopbackPeers)
	job := startTestJob(t, c, tt.tor, tt.dir, nil) // its local swarm gets no peer: every piece comes through a node
	key, join := joinTestCluster(t, c)
	type member struct {
		srv *delegate.Server
		cl  *cluster.Cluster
	}
	// Each node reaches the seeder over a link of its own at 512 KiB/s.
	start := func(name string) member {
		link := swarmtest.Throttle(t, net.TCPAddrFromAddrPort(seeder), 512<<10)
		srv, cl := startClusterMember(t, key, join, name, func(s *delegate.ServerConfig) {
			s.OnJob = func(j delegate.JobInfo) func() {
				j.AddPeers([]netip.AddrPort{link})
				return nil
			}
		})
		return member{srv, cl}
	}
	waitDelivered := func(name string, n int) {
		t.Helper()
		testenv.WaitFor(t, 30*time.Second, name+" delivering", func() bool {
			w, _ := workerNamed(job, name)
			return w.Delivered >= n
		})
		if job.dl.Status().Complete {
			t.Fatal("download complete before the churn: nothing tested")
		}
	}
	nodes := map[string]member{}
	for _, n := range []string{"node1", "node2", "node3"} {
		nodes[n] = start(n)
	}

	waitDelivered("node1", 4)
	nodes["node1"].cl.Close() // kill -9: no goodbye
	nodes["node1"].srv.Close()
	nodes["node4"] = start("node4")

	waitDelivered("node2", 8)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ls := nodes["node2"].srv.Leave(ctx)
	// (Before node5 joins: it may take node2's place in the status.)
	var w swarm.WorkerStatus
	testenv.WaitFor(t, 15*time.Second, "node2's job ended", func() bool {
		w, _ = workerNamed(job, "node2")
		return w.State == swarm.WorkerGone
	})
	nodes["node2"].cl.Leave(time.Second)
	nodes["node2"].cl.Close()
	nodes["node2"].srv.Close()
	nodes["node5"] = start("node5")

	waitCompleted(t, job, 60*time.Second, nil)
	tt.checkFile(t)
	if ls.Jobs != 1 || ls.Left != 1 || ls.Unshipped != 0 {
		t.Fatalf("node2's leave: %+v, want its one job left cleanly, every verified piece shipped", ls)
	}
	if int64(w.Delivered) != ls.Shipped {
		t.Fatalf("node2 shipped %d pieces; the coordinator accepted %d from it (%+v)", ls.Shipped, w.Delivered, w)
	}
}
