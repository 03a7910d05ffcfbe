package delegate

import (
	"context"
	"crypto/sha1"
	"net/netip"
	"testing"
	"time"

	"flotilla/internal/lab"
	"flotilla/internal/testenv"
	"flotilla/metainfo"
	"flotilla/swarm"
)

// A node downloads its lease from real aria2c seeders (found through
// opentracker by the lab) and streams the pieces to the coordinator.
func TestNodeFromAria2Seeders(t *testing.T) {
	testenv.Require(t, "aria2c", "opentracker", "mktorrent")
	cl := &lab.Cleanup{}
	t.Cleanup(cl.Run)
	lc := lab.DefaultSwarmConfig()
	lc.Dir = t.TempDir()
	lc.Payload.Size = 16 << 20
	lc.PieceLength = 256 << 10
	lc.Seeders = 2
	sw, err := lab.StartLoopbackSwarm(context.Background(), cl, lc)
	if err != nil {
		t.Fatal(err)
	}
	tor, err := metainfo.Load(sw.Torrent.Path)
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := newRealNode(t)
	r, err := Dial(context.Background(), srv.Addr().String(), testKey(1),
		JobSpec{InfoHash: tor.InfoHash, InfoBytes: tor.InfoBytes, Trackers: tor.Tiers()}, testClientConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var addrs []netip.AddrPort
	for _, a := range sw.SeederAddrs {
		addrs = append(addrs, netip.MustParseAddrPort(a))
	}
	n := tor.Info.NumPieces()
	start := time.Now()
	r.AddPeers(addrs)
	r.Assign(allPieces(n))
	got := map[int]bool{}
	deadline := time.After(60 * time.Second)
	for len(got) < n {
		select {
		case ev, ok := <-r.Events():
			if !ok {
				t.Fatalf("session ended after %d pieces: %v", len(got), r.Err())
			}
			if ev.Kind != swarm.EventPiece {
				continue
			}
			if sha1.Sum(ev.Data) != tor.Info.PieceHash(ev.Piece) {
				t.Fatalf("piece %d corrupt", ev.Piece)
			}
			got[ev.Piece] = true
			r.Release(ev.Piece) // we play the sub-chief
		case <-deadline:
			t.Fatalf("%d of %d pieces after 60 s: %+v", len(got), n, r.Status())
		}
	}
	d := time.Since(start)
	t.Logf("node fetched %d MiB from %d aria2c seeders in %v (%.1f MB/s)", tor.Info.Length>>20, len(addrs), d,
		float64(tor.Info.Length)/d.Seconds()/1e6)
}
