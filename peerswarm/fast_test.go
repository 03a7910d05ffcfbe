package peerswarm

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"flotilla/internal/testenv"
	"flotilla/peerwire"
	"flotilla/swarm/swarmtest"
)

// While a fast-extension peer chokes us, we request only its allowed-fast
// pieces.
func TestAllowedFastWhileChoked(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	const allowed = 5
	var mu sync.Mutex
	var requested []uint32
	p := startHostile(t, "127.0.0.10", tt, func(c net.Conn, r *peerwire.Reader) {
		var b []byte
		b = peerwire.AppendMessage(b, peerwire.Message{ID: peerwire.HaveAll})
		b = peerwire.AppendMessage(b, peerwire.Message{ID: peerwire.AllowedFast, Index: allowed})
		c.Write(b)
		for {
			m, err := r.ReadMessage()
			if err != nil {
				return
			}
			if m.ID == peerwire.Request {
				mu.Lock()
				requested = append(requested, m.Index)
				mu.Unlock()
				info := tt.Info
				off := info.PieceOffset(int(m.Index)) + int64(m.Begin)
				c.Write(peerwire.AppendMessage(nil, peerwire.Message{ID: peerwire.Piece, Index: m.Index, Begin: m.Begin,
					Block: tt.Data[off : off+int64(m.Length)]}))
			}
		}
	})
	st := swarmtest.NewStorage(tt.Info, nil)
	d := newTestDownload(t, testConfig(tt, st, 6))
	d.AddPeers([]netip.AddrPort{p.addr(t)})
	testenv.WaitFor(t, 10*time.Second, "the allowed-fast piece", func() bool { return d.Status().Written >= 1 })
	time.Sleep(100 * time.Millisecond) // a negative: nothing else may be asked for
	mu.Lock()
	defer mu.Unlock()
	for _, i := range requested {
		if i != allowed {
			t.Fatalf("requested piece %d from a choking peer (allowed-fast: %d); all: %v", i, allowed, requested)
		}
	}
	if d.Status().Written != 1 {
		t.Fatalf("written %d", d.Status().Written)
	}
}

// A request from a peer we choke is rejected (fast extension), and served
// once we unchoke it.
func TestRejectWhileChoking(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	seeder := newTestSeeder(t, tt, 7)

	c, err := net.Dial("tcp", seeder.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var id [20]byte
	copy(id[:], "-TEST00-rejectwhile0")
	if err := peerwire.WriteHandshake(c, peerwire.Handshake{Reserved: peerwire.DefaultReserved(), InfoHash: tt.InfoHash, PeerID: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := peerwire.ReadHandshake(c); err != nil {
		t.Fatal(err)
	}
	req := peerwire.Message{ID: peerwire.Request, Index: 3, Begin: 16384, Length: 16384}
	var b []byte
	b = peerwire.AppendMessage(b, peerwire.Message{ID: peerwire.HaveNone})
	b = peerwire.AppendMessage(b, req) // not interested, not unchoked yet
	c.Write(b)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := peerwire.NewReader(c, peerwire.DefaultLimits(tt.Info.NumPieces(), tt.Info.PieceLength, tt.Info.Length))
	var sawHaveAll, sawReject bool
	for !sawReject {
		m, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for reject: %v", err)
		}
		switch m.ID {
		case peerwire.HaveAll:
			sawHaveAll = true
		case peerwire.Piece:
			t.Fatal("served a request while choking")
		case peerwire.Reject:
			if m.Index != req.Index || m.Begin != req.Begin || m.Length != req.Length {
				t.Fatalf("reject for %+v", m)
			}
			sawReject = true
		}
	}
	if !sawHaveAll {
		t.Error("seeder did not send have-all to a fast peer")
	}
	// Interested: a free upload slot unchokes us at once; then it serves.
	c.Write(peerwire.AppendMessage(peerwire.AppendMessage(nil, peerwire.Message{ID: peerwire.Interested}), req))
	for {
		m, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for the block: %v", err)
		}
		if m.ID == peerwire.Piece {
			off := tt.Info.PieceOffset(3) + 16384
			if string(m.Block) != string(tt.Data[off:off+16384]) {
				t.Fatal("wrong block served")
			}
			return
		}
	}
}
