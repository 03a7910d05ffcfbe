package peerswarm

import (
	"bytes"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"flotilla/internal/bitfield"
	"flotilla/internal/testenv"
	"flotilla/peerwire"
	"flotilla/swarm"
	"flotilla/swarm/swarmtest"
)

// interestCounts is what a scripted seeder saw of our interest.
type interestCounts struct {
	interested, notInterested atomic.Int32
}

// How a scripted seeder unchokes.
const (
	unchokeNever    = iota
	unchokeOnRetell // aria2c's habit that matters here: a choke round when a choked peer declares interest
	unchokeAtOnce   // and serves a block every 5 ms
)

// startRoundSeeder is a seeder that unchokes as mode says and serves the
// requests of a peer it unchoked; seen counts the interest it was told.
func startRoundSeeder(t *testing.T, ip string, tt *swarmtest.Torrent, mode int, seen *interestCounts) *hostilePeer {
	return startRoundPeer(t, ip, tt, bitfield.Full(tt.Info.NumPieces()), mode, seen)
}

// startRoundPeer is startRoundSeeder holding only the pieces in has.
func startRoundPeer(t *testing.T, ip string, tt *swarmtest.Torrent, has bitfield.Bitfield, mode int, seen *interestCounts) *hostilePeer {
	return startHostile(t, ip, tt, func(c net.Conn, r *peerwire.Reader) {
		b := peerwire.AppendMessage(nil, peerwire.Message{ID: peerwire.BitfieldMsg, Bitfield: has})
		choked := mode != unchokeAtOnce
		if !choked {
			b = peerwire.AppendMessage(b, peerwire.Message{ID: peerwire.Unchoke})
		}
		c.Write(b)
		for {
			m, err := r.ReadMessage()
			if err != nil {
				return
			}
			switch m.ID {
			case peerwire.NotInterested:
				seen.notInterested.Add(1)
			case peerwire.Interested:
				if seen.interested.Add(1) > 1 && mode == unchokeOnRetell && choked {
					choked = false
					c.Write(peerwire.AppendMessage(nil, peerwire.Message{ID: peerwire.Unchoke}))
				}
			case peerwire.Request:
				if choked {
					continue
				}
				if mode == unchokeAtOnce {
					time.Sleep(5 * time.Millisecond)
				}
				off := int64(m.Index)*tt.Info.PieceLength + int64(m.Begin)
				blk := tt.Data[off : off+int64(m.Length)]
				if _, err := c.Write(peerwire.AppendMessage(nil, peerwire.Message{ID: peerwire.Piece, Index: m.Index, Begin: m.Begin, Block: blk})); err != nil {
					return
				}
			}
		}
	})
}

// TestChokedByEveryoneTellsInterestAgain: a download whose only peer keeps
// it choked tells the peer again that it is interested once ChokedNudge
// has passed, and the peer's round unchokes it.
func TestChokedByEveryoneTellsInterestAgain(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	var seen interestCounts
	seeder := startRoundSeeder(t, "127.0.0.6", tt, unchokeOnRetell, &seen)
	st := swarmtest.NewStorage(tt.Info, nil)
	cfg := testConfig(tt, st, 3)
	cfg.ChokedNudge = 200 * time.Millisecond
	leecher := newTestDownload(t, cfg)
	leecher.AddPeers([]netip.AddrPort{seeder.addr(t)})
	waitComplete(t, leecher, 20*time.Second)
	if !bytes.Equal(st.Bytes(), tt.Data) {
		t.Fatal("data differs")
	}
	if seen.notInterested.Load() < 1 || seen.interested.Load() < 2 {
		t.Fatalf("the seeder saw %d interested and %d not interested, want interest told again", seen.interested.Load(), seen.notInterested.Load())
	}
}

// TestChokedNudgeSpacedAndOff: a peer that never unchokes is told again at
// most once per two ChokedNudges; a negative ChokedNudge never tells it.
func TestChokedNudgeSpacedAndOff(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	for _, tc := range []struct {
		name   string
		nudge  time.Duration
		lo, hi int32
	}{
		// 1.5 s choked with 200 ms nudges: told at 0.2, 0.6, 1.0, 1.4 s
		// (every 400 ms), give or take a tick.
		{"spaced", 200 * time.Millisecond, 2, 5},
		{"off", -1, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var seen interestCounts
			seeder := startRoundSeeder(t, "127.0.0.6", tt, unchokeNever, &seen)
			cfg := testConfig(tt, swarmtest.NewStorage(tt.Info, nil), 3)
			cfg.ChokedNudge = tc.nudge
			leecher := newTestDownload(t, cfg)
			leecher.AddPeers([]netip.AddrPort{seeder.addr(t)})
			time.Sleep(1500 * time.Millisecond)
			if got := seen.notInterested.Load(); got < tc.lo || got > tc.hi {
				t.Fatalf("told again %d times in 1.5 s, want %d..%d", got, tc.lo, tc.hi)
			}
		})
	}
}

// TestNoNudgeWhileAPeerUnchokesUs: while one peer serves us (slowly, for
// about a second), a peer that keeps us choked is not told again.
func TestNoNudgeWhileAPeerUnchokesUs(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 2<<20, 64<<10)
	var seen, served interestCounts
	server := startRoundSeeder(t, "127.0.0.7", tt, unchokeAtOnce, &served)
	st := swarmtest.NewStorage(tt.Info, nil)
	cfg := testConfig(tt, st, 3)
	cfg.ChokedNudge = 100 * time.Millisecond
	leecher := newTestDownload(t, cfg)
	leecher.AddPeers([]netip.AddrPort{server.addr(t)})
	testenv.WaitFor(t, 10*time.Second, "the first block from the serving peer", func() bool {
		return leecher.Status().Workers[0].Downloaded > 0
	})
	choker := startRoundSeeder(t, "127.0.0.6", tt, unchokeNever, &seen)
	leecher.AddPeers([]netip.AddrPort{choker.addr(t)})
	waitComplete(t, leecher, 30*time.Second)
	if !bytes.Equal(st.Bytes(), tt.Data) {
		t.Fatal("data differs")
	}
	if got := seen.notInterested.Load(); got > 1 { // once: when we completed
		t.Fatalf("the choking peer was told not interested %d times while another peer served us", got)
	}
	if got := seen.interested.Load(); got != 1 {
		t.Fatalf("the choking peer was told we are interested %d times, want once", got)
	}
}

// TestNudgeCountsOnlyPeersHoldingTheLease: a swarm leased half the pieces
// (a cluster node's) is unchoked by a peer that holds only the other half
// (another host of the cluster) and choked by the seeder. The seeder is
// told again that we are interested and serves the lease; the other peer,
// which has nothing of the lease, is not.
func TestNudgeCountsOnlyPeersHoldingTheLease(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	n := tt.Info.NumPieces()
	lease, other := make([]int, 0, n/2), bitfield.New(n)
	for i := range n {
		if i < n/2 {
			lease = append(lease, i)
		} else {
			other.Set(i)
		}
	}
	var seen, host interestCounts
	seeder := startRoundSeeder(t, "127.0.0.6", tt, unchokeOnRetell, &seen)
	sibling := startRoundPeer(t, "127.0.0.7", tt, other, unchokeAtOnce, &host)
	cfg := testConfig(tt, swarmtest.NewStorage(tt.Info, nil), 3)
	cfg.ChokedNudge = 200 * time.Millisecond
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	got := make(chan int, n)
	go func() {
		for ev := range s.Events() {
			if ev.Kind == swarm.EventPiece && ev.Verified {
				got <- ev.Piece
			}
		}
	}()
	s.Assign(lease)
	s.AddPeers([]netip.AddrPort{sibling.addr(t), seeder.addr(t)})
	deadline := time.After(20 * time.Second)
	for done := map[int]bool{}; len(done) < len(lease); {
		select {
		case i := <-got:
			if i >= n/2 {
				t.Fatalf("piece %d, outside the lease, was fetched", i)
			}
			done[i] = true
		case <-deadline:
			t.Fatalf("%d of %d leased pieces after 20 s; the seeder was told interested %d times, not interested %d",
				len(done), len(lease), seen.interested.Load(), seen.notInterested.Load())
		}
	}
	if seen.notInterested.Load() < 1 || seen.interested.Load() < 2 {
		t.Fatalf("the seeder saw %d interested and %d not interested, want interest told again", seen.interested.Load(), seen.notInterested.Load())
	}
	if got := host.notInterested.Load(); got > 0 {
		t.Fatalf("the peer holding nothing of the lease was told not interested %d times", got)
	}
}
