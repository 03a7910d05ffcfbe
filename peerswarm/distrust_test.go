package peerswarm

import (
	"bytes"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"flotilla/internal/bitfield"
	"flotilla/internal/testenv"
	"flotilla/peerwire"
	"flotilla/swarm/swarmtest"
)

// A distrusted peer downloads only pieces of its own: other peers get no
// blocks of them and it gets none of theirs, its late blocks after giving
// a piece up are refused, and Trust lifts all of it.
func TestPickerDistrust(t *testing.T) {
	const bs = 16 << 10
	p := testPicker(4, 2*bs, 8*bs) // 4 pieces of 2 blocks
	got := p.Pick(0, hasAll, 1, nil)
	x := got[0].Piece
	p.Distrust(0)
	// Peer 1 may not join x, which 0 started.
	for _, b := range p.Pick(1, hasAll, 2, nil) {
		if b.Piece == x {
			t.Fatalf("peer 1 got a block of the distrusted peer's piece %d", x)
		}
	}
	// Peer 0 finishes x, then starts a piece of its own instead of
	// joining peer 1's.
	got = p.Pick(0, hasAll, 3, nil)
	if len(got) != 3 || got[0].Piece != x || got[1].Piece == got[0].Piece || got[1].Piece != got[2].Piece {
		t.Fatalf("distrusted peer picked %v", got)
	}
	y := got[1].Piece
	// A block of y delivered by peer 1 is refused and stays requestable.
	if r := p.Received(1, got[1], nil); r.Fresh {
		t.Fatal("another peer's block accepted into a reserved piece")
	}
	// 0 gives y up: peer 1 may finish it and 0's late block is refused.
	p.Unrequest(0, got[1])
	p.Unrequest(0, got[2])
	if r := p.Received(0, got[1], nil); r.Fresh {
		t.Fatal("late block of a distrusted peer accepted after it gave the piece up")
	}
	took := p.Pick(1, func(i int) bool { return i == y }, 2, nil)
	if len(took) != 2 {
		t.Fatalf("peer 1 could not take over the given-up piece: %v", took)
	}
	for _, b := range took {
		if r := p.Received(1, b, nil); !r.Fresh {
			t.Fatalf("block %v from peer 1 refused", b)
		}
	}
	// Trusted again: 0's blocks go anywhere.
	p.Trust(0)
	if len(p.distrusted) != 0 {
		t.Fatal("trust not lifted")
	}
	p.Distrust(2)
	p.PeerLeft(2)
	if len(p.distrusted) != 0 {
		t.Fatal("departed peer still distrusted")
	}
}

// A piece in progress that nobody owns and nobody is downloading (its
// trusted downloader left; or its distrusted owner was banned) is taken
// by a distrusted peer that has it, with the others' blocks dropped so that
// a failure would be its alone; before, it waited for a trusted peer for
// ever when only distrusted ones were left.
func TestPickerDistrustedClaimsOrphans(t *testing.T) {
	const bs = 16 << 10
	p := testPicker(2, 2*bs, 4*bs) // 2 pieces of 2 blocks
	got := p.Pick(1, hasAll, 1, nil)
	x := got[0].Piece
	if r := p.Received(1, got[0], nil); !r.Fresh {
		t.Fatal("block refused")
	}
	onlyX := func(i int) bool { return i == x }
	p.Distrust(0)
	// While peer 1 still downloads x, x is not the distrusted peer's.
	p.Pick(1, onlyX, 1, nil)
	if b := p.Pick(0, onlyX, 4, nil); len(b) != 0 {
		t.Fatalf("distrusted peer joined a piece another peer is downloading: %v", b)
	}
	p.PeerLeft(1)
	took := p.Pick(0, onlyX, 4, nil)
	if len(took) != 2 || took[0].Piece != x || took[1].Piece != x {
		t.Fatalf("distrusted peer took %v of the orphaned piece %d, want both its blocks", took, x)
	}
	for _, b := range took {
		if r := p.Received(0, b, nil); !r.Fresh {
			t.Fatalf("block %v from the new owner refused", b)
		}
	}
	if srcs := p.BlockSources(x, nil); srcs[0] != 0 || srcs[1] != 0 {
		t.Fatalf("block sources %v, want the owner's alone", srcs)
	}
}

// serveData answers every request with the torrent's data, except that
// wrong(piece, begin) may return replacement bytes or hold the answer.
func serveData(tt *swarmtest.Torrent, c net.Conn, r *peerwire.Reader, wrong func(piece, begin int) []byte) {
	n := tt.Info.NumPieces()
	b := peerwire.AppendMessage(nil, peerwire.Message{ID: peerwire.BitfieldMsg, Bitfield: bitfield.Full(n)})
	b = peerwire.AppendMessage(b, peerwire.Message{ID: peerwire.Unchoke})
	if _, err := c.Write(b); err != nil {
		return
	}
	for {
		m, err := r.ReadMessage()
		if err != nil {
			return
		}
		if m.ID != peerwire.Request {
			continue
		}
		off := int(tt.Info.PieceOffset(int(m.Index))) + int(m.Begin)
		if off < 0 || off+int(m.Length) > len(tt.Data) {
			return
		}
		block := tt.Data[off : off+int(m.Length)]
		if w := wrong(int(m.Index), int(m.Begin)); w != nil {
			block = w[:m.Length]
		}
		if _, err := c.Write(peerwire.AppendMessage(nil, peerwire.Message{ID: peerwire.Piece, Index: m.Index, Begin: m.Begin, Block: block})); err != nil {
			return
		}
	}
}

// A peer that sends wrong data for only some pieces (every fifth) next to
// an honest seeder: its first bad piece distrusts it, its second bans it,
// the honest seeder is never suspected, and the download is exact.
func TestPartialLiarDistrustedThenBanned(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 4<<20, 64<<10)
	liarIP, seedIP := netip.MustParseAddr("127.0.0.21"), netip.MustParseAddr("127.0.0.22")
	junk := bytes.Repeat([]byte{0xAB}, peerwire.BlockSize)
	gate, stop := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	badServed := map[int]bool{}
	liar := startHostile(t, liarIP.String(), tt, func(c net.Conn, r *peerwire.Reader) {
		serveData(tt, c, r, func(piece, begin int) []byte {
			if piece%5 != 0 {
				return nil
			}
			mu.Lock()
			first := len(badServed) == 0 || badServed[piece]
			if first {
				badServed[piece] = true
			}
			mu.Unlock()
			if !first {
				// Hold the second bad piece until the test has seen the
				// liar distrusted and not yet banned.
				select {
				case <-gate:
				case <-stop:
				}
			}
			return junk
		})
	})
	t.Cleanup(func() { close(stop) }) // runs before the hostile peer's cleanup

	st := swarmtest.NewStorage(tt.Info, nil)
	cfg := testConfig(tt, st, 11)
	cfg.Listener = listen(t, "127.0.0.1")
	leecher := newTestDownload(t, cfg)
	// The liar alone first: its first bad piece is its alone.
	leecher.AddPeers([]netip.AddrPort{liar.addr(t)})
	testenv.WaitFor(t, 10*time.Second, "the liar to be distrusted", func() bool { return leecher.Local().Distrusted(liarIP) })
	if leecher.Local().Banned(liarIP) {
		t.Fatal("liar banned on its first bad piece")
	}

	seedCfg := testConfig(tt, swarmtest.NewStorage(tt.Info, tt.Data), 12)
	seedCfg.Listener = listen(t, seedIP.String())
	seedCfg.Seed = true
	seeder := newTestDownload(t, seedCfg)
	leecher.AddPeers([]netip.AddrPort{addrOf(t, seeder)})
	close(gate)
	testenv.WaitFor(t, 10*time.Second, "the liar to be banned on its second bad piece", func() bool { return leecher.Local().Banned(liarIP) })
	waitComplete(t, leecher, 30*time.Second)
	if !bytes.Equal(st.Bytes(), tt.Data) {
		t.Fatal("downloaded data differs")
	}
	if leecher.Local().Distrusted(seedIP) || leecher.Local().Banned(seedIP) {
		t.Fatal("the honest seeder was distrusted or banned")
	}
	// The status snapshot may be up to StatusInterval old.
	testenv.WaitFor(t, 10*time.Second, "two failed pieces in the status", func() bool { return leecher.Status().Workers[0].HashFails >= 2 })
}

// A bad piece with two contributors, a liar (one wrong block, then it
// chokes) and an honest peer: both are distrusted; the honest one, which
// contributes to no other failed piece, is not banned, and once the piece
// verifies blame trusts it again while the liar stays distrusted.
func TestSharedBadPieceDistrustsBoth(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 2<<20, 64<<10)
	n := tt.Info.NumPieces()
	liarIP, honestIP := netip.MustParseAddr("127.0.0.23"), netip.MustParseAddr("127.0.0.24")
	junk := bytes.Repeat([]byte{0xCD}, peerwire.BlockSize)
	var badPiece atomic.Int32
	badPiece.Store(-1)
	var rejected atomic.Int32
	liar := startHostile(t, liarIP.String(), tt, func(c net.Conn, r *peerwire.Reader) {
		// Announces one piece, sends a wrong first block, then chokes and
		// rejects the rest.
		bf := bitfield.New(n)
		bf[0] = 0x80
		c.Write(append(peerwire.AppendMessage(nil, peerwire.Message{ID: peerwire.BitfieldMsg, Bitfield: bf}),
			peerwire.AppendMessage(nil, peerwire.Message{ID: peerwire.Unchoke})...))
		for {
			m, err := r.ReadMessage()
			if err != nil {
				return
			}
			if m.ID != peerwire.Request {
				continue
			}
			var out []byte
			if badPiece.CompareAndSwap(-1, int32(m.Index)) {
				out = peerwire.AppendMessage(out, peerwire.Message{ID: peerwire.Piece, Index: m.Index, Begin: m.Begin, Block: junk[:m.Length]})
				out = peerwire.AppendMessage(out, peerwire.Message{ID: peerwire.Choke})
			} else {
				out = peerwire.AppendMessage(out, peerwire.Message{ID: peerwire.Reject, Index: m.Index, Begin: m.Begin, Length: m.Length})
				rejected.Add(1)
			}
			if _, err := c.Write(out); err != nil {
				return
			}
		}
	})
	gate, stop := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	served := map[[2]int]bool{}
	honest := startHostile(t, honestIP.String(), tt, func(c net.Conn, r *peerwire.Reader) {
		serveData(tt, c, r, func(piece, begin int) []byte {
			if piece != int(badPiece.Load()) {
				return nil
			}
			mu.Lock()
			again := served[[2]int{piece, begin}]
			served[[2]int{piece, begin}] = true
			mu.Unlock()
			if again {
				// The bad piece's second download waits until the test
				// has seen both contributors distrusted.
				select {
				case <-gate:
				case <-stop:
				}
			}
			return nil
		})
	})
	t.Cleanup(func() { close(stop) })

	st := swarmtest.NewStorage(tt.Info, nil)
	cfg := testConfig(tt, st, 13)
	cfg.Listener = listen(t, "127.0.0.1")
	leecher := newTestDownload(t, cfg)
	leecher.AddPeers([]netip.AddrPort{liar.addr(t)})
	blocks := int(tt.Info.PieceLength / peerwire.BlockSize)
	testenv.WaitFor(t, 10*time.Second, "the liar to send one block and reject the rest", func() bool { return int(rejected.Load()) >= blocks-1 })
	leecher.AddPeers([]netip.AddrPort{honest.addr(t)})
	testenv.WaitFor(t, 10*time.Second, "both contributors of the bad piece to be distrusted", func() bool {
		return leecher.Local().Distrusted(liarIP) && leecher.Local().Distrusted(honestIP)
	})
	if leecher.Local().Banned(liarIP) || leecher.Local().Banned(honestIP) {
		t.Fatal("a contributor was banned on a first offence")
	}
	close(gate)
	waitComplete(t, leecher, 30*time.Second)
	if !bytes.Equal(st.Bytes(), tt.Data) {
		t.Fatal("downloaded data differs")
	}
	testenv.WaitFor(t, 10*time.Second, "blame to clear the honest peer", func() bool { return !leecher.Local().Distrusted(honestIP) })
	if leecher.Local().Banned(honestIP) {
		t.Fatal("the honest contributor was banned")
	}
	if !leecher.Local().Distrusted(liarIP) || leecher.Local().Banned(liarIP) {
		t.Fatal("the liar should stay distrusted, not banned, after one bad piece")
	}
	testenv.WaitFor(t, 10*time.Second, "the failed piece in the status", func() bool { return leecher.Status().Workers[0].HashFails >= 1 })
	if ws := leecher.Status().Workers[0]; ws.HashFails != 1 {
		t.Fatalf("%d failed pieces, want 1", ws.HashFails)
	}
}
