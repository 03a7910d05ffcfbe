package delegate

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"flotilla/internal/testenv"
	"flotilla/swarm"
	"flotilla/swarm/swarmtest"
)

// newNamedRealNode is newRealNode with a name of its own.
func newNamedRealNode(t testing.TB, name string) *Server {
	t.Helper()
	return newRealNodeWith(t, t.TempDir(), swarmtest.Logger(t, slog.LevelWarn).With("node", name),
		func(c *ServerConfig) { c.Name = name })
}

func workerStatus(st swarm.Status, name string) (swarm.WorkerStatus, bool) {
	for _, w := range st.Workers {
		if w.Name == name {
			return w, true
		}
	}
	return swarm.WorkerStatus{}, false
}

// A node stopped cleanly in the middle of a download (Leave, swarmnode's
// SIGTERM) ships every piece its swarm verified before it goes: the
// coordinator accepts each of them from it (none is fetched again
// elsewhere), its lease is back in the pool before its job ends (nothing
// returns as "gone"), and the download completes byte-identical through
// the other node.
func TestNodeLeaveShipsFinishedPieces(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 4<<20, 64<<10) // 64 pieces
	n := tt.Info.NumPieces()
	seeder := newSeeder(t, tt)

	st := swarmtest.NewStorage(tt.Info, nil)
	cfg := swarmConfig(t, tt, st, 2)
	cfg.MinLease = 4
	coord := newDownload(t, cfg) // its local swarm has no peers

	leaver := newNamedRealNode(t, "leaver")
	stayer := newNamedRealNode(t, "stayer")
	ra := mustDialNode(t, leaver.Addr().String(), tt)
	rb := mustDialNode(t, stayer.Addr().String(), tt)
	// Each node reaches the seeder through a link of its own at 1 MB/s:
	// the download takes about two seconds.
	ra.AddPeers([]netip.AddrPort{swarmtest.Throttle(t, seeder.Addr(), 1<<20)})
	rb.AddPeers([]netip.AddrPort{swarmtest.Throttle(t, seeder.Addr(), 1<<20)})
	coord.AddWorker(ra)
	coord.AddWorker(rb)

	testenv.WaitFor(t, 20*time.Second, "the leaving node delivered some pieces", func() bool {
		w, _ := workerStatus(coord.Status(), "leaver")
		return w.Delivered >= 6
	})
	if coord.Status().Complete {
		t.Fatal("download complete before the node left: nothing tested")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ls := leaver.Leave(ctx)
	t.Logf("leave: %+v", ls)
	if ls.Jobs != 1 || ls.Left != 1 || ls.Unshipped != 0 || ls.Shipped == 0 {
		t.Fatalf("leave: %+v, want 1 job left cleanly with nothing unshipped", ls)
	}
	select {
	case <-coord.Complete():
	case <-time.After(30 * time.Second):
		t.Fatalf("download did not complete after the node left: %+v", coord.Status())
	}
	if !bytes.Equal(st.Bytes(), tt.Data) {
		t.Fatal("data differs")
	}
	testenv.WaitFor(t, 5*time.Second, "the job ended with ErrNodeLeft", func() bool { return errors.Is(ra.Err(), ErrNodeLeft) })
	s := coord.Status()
	w, ok := workerStatus(s, "leaver")
	if !ok {
		t.Fatalf("no status of the leaving node: %+v", s.Workers)
	}
	// Every piece the node shipped was accepted from it: none was dropped
	// as verified already (fetched by another worker first).
	if int64(w.Delivered) != ls.Shipped {
		t.Fatalf("coordinator accepted %d pieces from the node, which shipped %d", w.Delivered, ls.Shipped)
	}
	if w.State != swarm.WorkerGone {
		t.Fatalf("leaving node's state %q, want %q", w.State, swarm.WorkerGone)
	}
	if s.Returned.Gone != 0 {
		t.Fatalf("%d pieces returned as gone: the node's lease was not given back before it went (%+v)", s.Returned.Gone, s.Returned)
	}
	wb, _ := workerStatus(s, "stayer")
	if w.Delivered+wb.Delivered != n {
		t.Fatalf("pieces accepted: leaver %d + stayer %d, want %d", w.Delivered, wb.Delivered, n)
	}
	// The node takes no new job while it leaves.
	if _, err := Dial(context.Background(), leaver.Addr().String(), testKey(1), jobSpec(tt), testClientConfig(t)); !errors.Is(err, ErrNodeLeft) {
		t.Fatalf("job on a leaving node: %v, want ErrNodeLeft", err)
	}
}
