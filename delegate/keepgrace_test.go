package delegate

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"flotilla/internal/bitfield"
	"flotilla/internal/hostilepeer"
	"flotilla/internal/testenv"
	"flotilla/peerwire"
	"flotilla/swarm/swarmtest"
)

// gatedPeer is the only BitTorrent peer of a node's job in the keep-grace
// tests: it has every piece, serves the first block of a piece at once
// and holds back every other block until release is closed. So a piece
// it is asked for is started (a block received, the rest requested) and
// stays unfinished until the test says.
type gatedPeer struct {
	c       *hostilepeer.Conn
	tt      *swarmtest.Torrent
	release chan struct{}
	served  atomic.Int64 // blocks sent
	held    atomic.Int64 // requests held back (not yet served)
	done    chan struct{}
}

func startGatedPeer(t *testing.T, tt *swarmtest.Torrent, addr string) *gatedPeer {
	t.Helper()
	info := tt.Info
	c, err := hostilepeer.Dial(context.Background(), "127.0.0.1", addr, hostilepeer.Torrent{
		InfoHash: tt.InfoHash, NumPieces: info.NumPieces(), PieceLength: info.PieceLength, Length: info.Length,
	}, hostilepeer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := &gatedPeer{c: c, tt: tt, release: make(chan struct{}), done: make(chan struct{})}
	if err := c.Send(peerwire.Message{ID: peerwire.BitfieldMsg, Bitfield: c.T.AllBits()}, peerwire.Message{ID: peerwire.Unchoke}); err != nil {
		t.Fatal(err)
	}
	reqs := make(chan peerwire.Message, 1024)
	go func() { // reader
		defer close(reqs)
		for {
			m, err := c.Reader().ReadMessage()
			if err != nil {
				return
			}
			if !m.KeepAlive && m.ID == peerwire.Request {
				reqs <- peerwire.Message{ID: m.ID, Index: m.Index, Begin: m.Begin, Length: m.Length}
			}
		}
	}()
	go func() { // server: the only writer
		defer close(g.done)
		serve := func(m peerwire.Message) {
			p := int(m.Index)
			if p >= info.NumPieces() || int64(m.Begin)+int64(m.Length) > info.PieceLen(p) {
				return
			}
			blk := tt.Piece(p)[m.Begin : m.Begin+m.Length]
			if c.Send(peerwire.Message{ID: peerwire.Piece, Index: m.Index, Begin: m.Begin, Block: blk}) == nil {
				g.served.Add(1)
			}
		}
		var queue []peerwire.Message
		release := g.release
		for {
			select {
			case m, ok := <-reqs:
				if !ok {
					return
				}
				if m.Begin == 0 || release == nil {
					serve(m)
				} else {
					queue = append(queue, m)
					g.held.Add(1)
				}
			case <-release:
				release = nil
				for _, m := range queue {
					serve(m)
					g.held.Add(-1)
				}
				queue = nil
			}
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-g.done
	})
	return g
}

// keeping reports whether a lost session of torrent ih is keeping its
// pieces on srv (Keep is running).
func keeping(srv *Server, ih [20]byte) bool {
	srv.keep.mu.Lock()
	defer srv.keep.mu.Unlock()
	return srv.keep.m[ih] != nil
}

// keptList reads the pieces listed in a kept .bits file (nil if none).
func keptList(t *testing.T, dir string, tt *swarmtest.Torrent) []int {
	t.Helper()
	_, bits := keptPaths(dir, tt.InfoHash)
	b, err := os.ReadFile(bits)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	n := tt.Info.NumPieces()
	if len(b) != len(keptMagic)+20+bitfield.Len(n) {
		t.Fatalf("kept list of %d bytes", len(b))
	}
	var ps []int
	for p := range n {
		if bitfield.Bitfield(b[len(keptMagic)+20:]).Has(p) {
			ps = append(ps, p)
		}
	}
	return ps
}

// startStalledPiece runs a job on a real node whose only peer is a
// gatedPeer, leases it piece 2 and waits until that piece is started
// (its first block received, the others requested and held). Then it
// drops the coordinator's session without a Stop, and waits until the
// node is keeping (kept.go). Before the node tracked its lease itself,
// Keep read the swarm's Status, which could predate the Assign, and gave
// up on piece 2 at once.
func startStalledPiece(t *testing.T) (srv *Server, dir string, tt *swarmtest.Torrent, g *gatedPeer) {
	t.Helper()
	tt = swarmtest.NewTorrent(t, 1<<20, 64<<10) // 16 pieces of 4 blocks
	srv, dir = newRealNode(t)
	r := mustDialNode(t, srv.Addr().String(), tt)
	defer r.Close()
	g = startGatedPeer(t, tt, r.PeerAddr())
	r.Assign([]int{2})
	testenv.WaitFor(t, 20*time.Second, "piece 2 started: its first block served, the rest held", func() bool {
		return g.served.Load() >= 1 && g.held.Load() >= 1
	})
	r.sess.sess.Close() // the coordinator is gone: no Stop
	// Keeping, or already done with it (it did not wait for piece 2: the
	// callers' checks fail).
	testenv.WaitFor(t, 10*time.Second, "the node to notice and start keeping", func() bool {
		return keeping(srv, tt.InfoHash) || srv.Stats().ActiveJobs == 0
	})
	if s := g.served.Load(); s != 1 {
		t.Fatalf("the peer served %d blocks before the session was lost; want only the first of piece 2", s)
	}
	return srv, dir, tt, g
}

// TestNodeKeepGraceFinishesStartedPiece: a piece the node had started
// when the coordinator's session was lost is finished in the keep grace
// (its last blocks arrive only after the node began keeping), kept in
// kept-<ih>.part/.bits, and shipped, unasked, to the next session — a
// session whose job has no peer at all, so the piece can only come from
// what was kept.
func TestNodeKeepGraceFinishesStartedPiece(t *testing.T) {
	srv, dir, tt, g := startStalledPiece(t)
	close(g.release) // the rest of piece 2 arrives now, in the grace
	testenv.WaitFor(t, keepGrace+20*time.Second, "the node to finish keeping", func() bool {
		return !keeping(srv, tt.InfoHash) && srv.Stats().ActiveJobs == 0
	})
	if got := keptList(t, dir, tt); len(got) != 1 || got[0] != 2 {
		t.Fatalf("kept pieces %v; want [2], finished in the grace", got)
	}
	if g.served.Load() < 4 {
		t.Fatalf("the peer served %d blocks; piece 2 has 4", g.served.Load())
	}

	r2 := mustDialNode(t, srv.Addr().String(), tt)
	defer r2.Close()
	got, _ := collect(t, r2, tt, 1, 10*time.Second) // collect checks the hash
	if !got[2] {
		t.Fatalf("next session got %v; want the kept piece 2", got)
	}
	if _, bits := keptPaths(dir, tt.InfoHash); fileExists(bits) {
		t.Error("the kept list outlived its adoption")
	}
}

// TestNodeKeepGraceBounded: a piece that stays stalled after the session
// is lost is not waited for beyond the grace: the node stops keeping and
// ends the job while the peer still holds the piece's blocks, keeps
// nothing of it (a partial piece is never kept or shipped), and leaves no
// kept files.
func TestNodeKeepGraceBounded(t *testing.T) {
	srv, dir, tt, g := startStalledPiece(t)
	start := time.Now()
	testenv.WaitFor(t, keepGrace+30*time.Second, "the node to give up on the stalled piece and end the job", func() bool {
		return !keeping(srv, tt.InfoHash) && srv.Stats().ActiveJobs == 0
	})
	if s, h := g.served.Load(), g.held.Load(); s != 1 || h == 0 {
		t.Fatalf("peer served %d blocks and holds %d requests; the piece was meant to stay stalled", s, h)
	}
	if got := keptList(t, dir, tt); got != nil {
		t.Fatalf("kept %v from a piece that never finished", got)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) != 0 {
		t.Fatalf("files left after the job ended: %s", strings.Join(names, ", "))
	}
	t.Logf("gave up on the stalled piece %v after the session loss (grace %v)", time.Since(start).Round(100*time.Millisecond), keepGrace)
}

func fileExists(path string) bool {
	_, err := os.Stat(filepath.Clean(path))
	return err == nil
}
