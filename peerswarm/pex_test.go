package peerswarm

import (
	"bytes"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"flotilla/peerwire"
	"flotilla/swarm"
	"flotilla/swarm/swarmtest"
)

// TestPexFindsPeer: a seeder C is known only to a swarm B that has no
// pieces; a leecher A told only of B learns C from B's PEX and downloads
// everything from it (B has nothing to give), over real TCP on loopback.
func TestPexFindsPeer(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 2<<20+777, 64<<10)
	cCfg := testConfig(tt, swarmtest.NewStorage(tt.Info, tt.Data), 1)
	cCfg.Listener = listen(t, "127.0.0.1")
	cCfg.Seed = true
	cCfg.PexInterval = 300 * time.Millisecond
	c := newTestDownload(t, cCfg)

	// B: a bare local swarm, no sub-chief, so never leased a piece.
	bCfg := testConfig(tt, swarmtest.NewStorage(tt.Info, nil), 2)
	bCfg.Listener = listen(t, "127.0.0.1")
	bCfg.PexInterval = 300 * time.Millisecond
	b, err := New(bCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	bAddr := netip.MustParseAddrPort(b.Addr().String())
	b.AddPeers([]netip.AddrPort{addrOf(t, c)})

	st := swarmtest.NewStorage(tt.Info, nil)
	aCfg := testConfig(tt, st, 3)
	aCfg.Listener = listen(t, "127.0.0.1")
	aCfg.PexInterval = 300 * time.Millisecond
	a := newTestDownload(t, aCfg)
	a.AddPeers([]netip.AddrPort{bAddr})
	waitComplete(t, a, 30*time.Second)
	// Every byte came from C: A was told only of B, and B has none.
	if !bytes.Equal(st.Bytes(), tt.Data) {
		t.Fatal("downloaded data differs")
	}
}

// TestPexReceive, public and private: a raw peer reads the leecher's
// extension handshake (ut_pex advertised only when public), then sends two
// PEX messages back to back, the first with more peers than a message may
// carry. Public: the first is taken (MaxPexPeers of it) and reported to the
// sub-chief, the second is too soon and ignored. Private: both ignored.
func TestPexReceive(t *testing.T) {
	for _, private := range []bool{false, true} {
		tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
		info := *tt.Info
		info.Private = private
		tt.Info = &info
		cfg := testConfig(tt, swarmtest.NewStorage(tt.Info, nil), 1)
		cfg.Listener = listen(t, "127.0.0.1")
		d := newTestDownload(t, cfg)
		c, r := rawPeer(t, d, tt, "127.0.0.1", "-XX0001-pexpexpexpex")

		var h peerwire.ExtHandshake
		for got := false; !got; {
			m, err := r.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			if got = m.ID == peerwire.Extended && m.ExtID == peerwire.ExtHandshakeID; got {
				if h, err = peerwire.ParseExtHandshake(m.ExtPayload); err != nil {
					t.Fatal(err)
				}
			}
		}
		if id := h.M[peerwire.ExtPexName]; (id != 0) == private {
			t.Fatalf("private=%v: ut_pex ID %d in %+v", private, id, h)
		}
		var first, second peerwire.PexMsg
		for i := range 2 * peerwire.MaxPexPeers {
			first.Added = append(first.Added, peerwire.PexPeer{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 9, 0, byte(i)}), 1)})
		}
		second.Added = []peerwire.PexPeer{{Addr: netip.MustParseAddrPort("127.9.1.1:1")}}
		// Beyond the codec's bound: build an oversized message by hand.
		big := []byte("d5:added")
		var list []byte
		for _, p := range first.Added {
			list = append(list, p.Addr.Addr().AsSlice()...)
			list = append(list, 0, 1)
		}
		big = append(append(append(big, []byte(itoa(len(list))+":")...), list...), 'e')
		ext := peerwire.ExtHandshake{M: map[string]int{peerwire.ExtPexName: 7}}
		writeMsgs(t, c,
			peerwire.Message{ID: peerwire.Extended, ExtID: peerwire.ExtHandshakeID, ExtPayload: ext.Encode()},
			peerwire.Message{ID: peerwire.Extended, ExtID: ourPexID, ExtPayload: big},
			peerwire.Message{ID: peerwire.Extended, ExtID: ourPexID, ExtPayload: second.AppendTo(nil)},
			peerwire.Message{ID: peerwire.Request, Index: 0, Begin: 0, Length: peerwire.BlockSize})
		// The reject answers the request sent after the PEX messages: they
		// were handled.
		for {
			m, err := r.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			if m.ID == peerwire.Reject {
				break
			}
		}
		var learned, reported int
		onOwner(t, d.Local(), func() {
			for a := range d.Local().dialer.cands {
				if a.Addr().As4()[1] == 9 {
					learned++
				}
			}
			for _, ev := range d.Local().outbox {
				if ev.Kind == swarm.EventPeers {
					reported += len(ev.Addrs)
				}
			}
		})
		want := peerwire.MaxPexPeers
		if private {
			want = 0
		}
		// Reported may already be read by the sub-chief: at most want.
		if learned != want || reported > want {
			t.Fatalf("private=%v: %d candidates learned, %d reported, want %d", private, learned, reported, want)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestPexDiff: what a peer is told: live peers it was not told of, never
// itself, at most MaxPexPeers, then those that left; nothing twice.
func TestPexDiff(t *testing.T) {
	recv := &peer{addr: netip.MustParseAddrPort("10.0.0.1:40000"), listenPort: 6881}
	live := map[netip.AddrPort]peerwire.PexFlags{
		netip.MustParseAddrPort("10.0.0.1:6881"): 0, // the receiver itself
	}
	for i := range peerwire.MaxPexPeers + 10 {
		live[netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, 0, byte(i)}), 1)] = peerwire.PexReachable
	}
	m, ok := pexDiff(recv, live)
	if !ok || len(m.Added) != peerwire.MaxPexPeers || len(m.Dropped) != 0 {
		t.Fatalf("first: %d added, %d dropped", len(m.Added), len(m.Dropped))
	}
	m, ok = pexDiff(recv, live)
	if !ok || len(m.Added) != 10 || len(m.Dropped) != 0 {
		t.Fatalf("second: %d added, %d dropped", len(m.Added), len(m.Dropped))
	}
	for _, p := range m.Added {
		if p.Addr.Addr() == recv.addr.Addr() {
			t.Fatalf("told the receiver of itself: %v", p.Addr)
		}
	}
	if _, ok = pexDiff(recv, live); ok {
		t.Fatal("third: something to say with nothing changed")
	}
	gone := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, 0, 3}), 1)
	delete(live, gone)
	m, ok = pexDiff(recv, live)
	if !ok || len(m.Added) != 0 || len(m.Dropped) != 1 || m.Dropped[0] != gone {
		t.Fatalf("after one left: %+v", m)
	}
}
