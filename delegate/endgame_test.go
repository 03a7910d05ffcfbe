package delegate

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"flotilla/internal/hostilepeer"
	"flotilla/internal/testenv"
	"flotilla/peerwire"
	"flotilla/swarm/swarmtest"
)

// stallingSeeder is a peer that claims every piece, unchokes, takes
// requests and never answers them: the slow link of a lagging node. It
// records which blocks it was asked for and which requests were
// cancelled.
type stallingSeeder struct {
	mu        sync.Mutex
	requested map[uint64]bool // index<<32 | begin
	cancelled map[uint64]bool
	done      chan struct{}
}

// newStallingSeeder dials the swarm listening at addr and stalls it.
func newStallingSeeder(t *testing.T, addr string, tt *swarmtest.Torrent) *stallingSeeder {
	t.Helper()
	ht := hostilepeer.Torrent{InfoHash: tt.InfoHash, NumPieces: tt.Info.NumPieces(), PieceLength: tt.Info.PieceLength, Length: tt.Info.Length}
	c, err := hostilepeer.Dial(context.Background(), "127.0.0.1", addr, ht, hostilepeer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(peerwire.Message{ID: peerwire.BitfieldMsg, Bitfield: ht.AllBits()}, peerwire.Message{ID: peerwire.Unchoke}); err != nil {
		t.Fatal(err)
	}
	s := &stallingSeeder{requested: map[uint64]bool{}, cancelled: map[uint64]bool{}, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			m, err := c.Reader().ReadMessage()
			if err != nil {
				return
			}
			if m.KeepAlive {
				continue
			}
			k := uint64(m.Index)<<32 | uint64(m.Begin)
			s.mu.Lock()
			switch m.ID {
			case peerwire.Request:
				s.requested[k] = true
			case peerwire.Cancel:
				s.cancelled[k] = true
			}
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-s.done
	})
	return s
}

// pieces returns the pieces with a block requested, and those of them
// with a request not cancelled.
func (s *stallingSeeder) pieces() (requested, open map[int]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	requested, open = map[int]bool{}, map[int]bool{}
	for k := range s.requested {
		requested[int(k>>32)] = true
		if !s.cancelled[k] {
			open[int(k>>32)] = true
		}
	}
	return requested, open
}

// End game across a node: a node whose only peer never sends a block
// holds its lease hostage. Once the coordinator's own swarm (given a real
// seeder) has finished its share, the sub-chief moves the node's
// unstarted pieces to it (a steal) and duplicates the ones the node has
// started; when the coordinator's copy of a duplicated piece arrives, the
// node is told to drop its copy and really stops fetching it: its
// requests are cancelled on the wire. The output is byte-identical and
// the duplicated bytes are counted.
func TestEndGameCancelsNodeCopy(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 24*64<<10, 64<<10)
	n := tt.Info.NumPieces()
	// One piece's blocks in flight at a time: the node starts one piece
	// of its lease and leaves the others unstarted.
	srv := newRealNodeWith(t, t.TempDir(), swarmtest.Logger(t, slog.LevelWarn), func(c *ServerConfig) {
		c.Swarm.StartPipeline, c.Swarm.MinPipeline, c.Swarm.MaxPipeline = 4, 4, 4
	})
	st := swarmtest.NewStorage(tt.Info, nil)
	cfg := swarmConfig(t, tt, st, 2)
	cfg.MinLease = 4
	cfg.LeaseTimeout = time.Minute // the node is slow, not stalled: no lease deadline
	// Seeding keeps the node's job after completion. Without it the job
	// ends as the last piece is verified, and when that piece is the
	// duplicated one its revocation races the job's end: the node closes
	// its peers (which drops their requests as well) and may never write
	// the Cancels this test looks for on the wire (a CI failure: "timed
	// out waiting for the node to cancel its requests").
	cfg.Seed = true
	coord := newDownload(t, cfg) // its local swarm has no peer yet

	r := mustDialNode(t, srv.Addr().String(), tt)
	staller := newStallingSeeder(t, r.PeerAddr(), tt)
	coord.AddWorker(r)
	testenv.WaitFor(t, 10*time.Second, "the node to request blocks from its stalling peer", func() bool {
		req, _ := staller.pieces()
		return len(req) > 0
	})

	seeder := newSeeder(t, tt)
	coord.local.AddPeers([]netip.AddrPort{addrPort(t, seeder.Addr())})
	select {
	case <-coord.Complete():
	case <-time.After(30 * time.Second):
		t.Fatalf("download did not complete past the lagging node: %+v", coord.Status())
	}
	if !bytes.Equal(st.Bytes(), tt.Data) {
		t.Fatal("data differs")
	}
	s := coord.Status()
	eg := s.EndGame
	if eg.Duplicated == 0 || eg.DuplicatedBytes != int64(eg.Duplicated)*tt.Info.PieceLength {
		t.Fatalf("end game %+v: no started piece of the node was duplicated", eg)
	}
	if eg.Cancelled < eg.Duplicated || eg.Twice != 0 {
		t.Fatalf("end game %+v: every duplicate should have been cancelled at the node, none delivered twice", eg)
	}
	if s.Returned.Revoked == 0 {
		t.Fatalf("returned %+v: the node's unstarted pieces were not moved", s.Returned)
	}
	for _, w := range s.Workers {
		if w.Name != "local" && w.Delivered != 0 {
			t.Fatalf("the stalled node delivered %d pieces", w.Delivered)
		}
	}
	// Every block the node asked its stalling peer for is cancelled: it
	// stopped fetching the pieces whose other copy arrived.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, open := staller.pieces()
		if len(open) == 0 {
			break
		}
		if time.Now().After(deadline) {
			closed := false
			select {
			case <-staller.done:
				closed = true
			default:
			}
			t.Fatalf("after 10 s the node still has requests open for pieces %v (connection closed: %v); end game %+v", slices.Sorted(maps.Keys(open)), closed, eg)
		}
		time.Sleep(10 * time.Millisecond)
	}
	req, _ := staller.pieces()
	if len(req) > eg.Duplicated {
		t.Fatalf("the node started %d pieces, %d were duplicated", len(req), eg.Duplicated)
	}
	t.Logf("%d pieces: the node started %d, end game %+v, returned %+v", n, len(req), eg, s.Returned)
}
