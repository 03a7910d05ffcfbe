package peerswarm

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"flotilla/internal/testenv"
	"flotilla/peerwire"
	"flotilla/swarm/swarmtest"
)

// rawPeer dials d from local address ip and does the handshake as peer id.
func rawPeer(t *testing.T, d *testDownload, tt *swarmtest.Torrent, ip, id string) (net.Conn, *peerwire.Reader) {
	t.Helper()
	c := handshakeFrom(t, d, tt, ip, id, peerwire.DefaultReserved())
	return c, peerwire.NewReader(c, peerwire.DefaultLimits(tt.Info.NumPieces(), tt.Info.PieceLength, tt.Info.Length))
}

func writeMsgs(t *testing.T, c net.Conn, ms ...peerwire.Message) {
	t.Helper()
	var b []byte
	for _, m := range ms {
		b = peerwire.AppendMessage(b, m)
	}
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

func connectedPeers(t *testing.T, d *testDownload) int {
	var n int
	onOwner(t, d.Local(), func() { n = d.Local().peers.n })
	return n
}

// readUntilClosed reads messages until the connection ends and reports
// the error; a timeout (the connection stayed open) fails the test.
func readUntilClosed(t *testing.T, c net.Conn, r *peerwire.Reader, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		m, err := r.ReadMessage()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("%s: connection still open", what)
			}
			return
		}
		if m.ID == peerwire.Piece && !m.KeepAlive {
			t.Fatalf("%s: served a piece", what)
		}
	}
}

// stillOpen reports whether c is open: a read times out rather than ending.
func stillOpen(c net.Conn, r *peerwire.Reader) bool {
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	for {
		if _, err := r.ReadMessage(); err != nil {
			var ne net.Error
			return errors.As(err, &ne) && ne.Timeout()
		}
	}
}

// keepTalking sends a keep-alive on c every 100 ms until c fails, so
// that the swarm never sees c as idle.
func keepTalking(c net.Conn) {
	go func() {
		ka := peerwire.AppendMessage(nil, peerwire.Message{KeepAlive: true})
		for {
			if _, err := c.Write(ka); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
}

// MaxPeers caps incoming connections (extra ones are closed after the
// handshake; incoming peers get at most three quarters of the slots) and
// outgoing dials (none while the cap is reached).
func TestMaxPeersCap(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	cfg := testConfig(tt, swarmtest.NewStorage(tt.Info, nil), 20)
	cfg.Listener = listen(t, "127.0.0.1")
	cfg.MaxPeers = 2
	d := newTestDownload(t, cfg)

	// One incoming peer fills the incoming quota (1 of 2); it keeps
	// talking, so it is never evicted for a newcomer.
	c1, r1 := rawPeer(t, d, tt, "127.0.1.1", "-TEST00-maxpeers0001")
	keepTalking(c1)
	testenv.WaitFor(t, 10*time.Second, "the first peer", func() bool { return connectedPeers(t, d) == 1 })
	for i, ip := range []string{"127.0.1.3", "127.0.1.4", "127.0.1.5"} {
		c, r := rawPeer(t, d, tt, ip, "-TEST00-maxpeers001"+string(rune('0'+i)))
		readUntilClosed(t, c, r, "incoming connection over the quota from "+ip)
	}
	// The other slot is for a peer we dial.
	first := startHostile(t, "127.0.1.2", tt, func(c net.Conn, r *peerwire.Reader) {
		for {
			if _, err := r.ReadMessage(); err != nil {
				return
			}
		}
	})
	d.AddPeers([]netip.AddrPort{first.addr(t)})
	testenv.WaitFor(t, 10*time.Second, "two connected peers", func() bool { return connectedPeers(t, d) == 2 })
	c, r := rawPeer(t, d, tt, "127.0.1.7", "-TEST00-maxpeers0007")
	readUntilClosed(t, c, r, "connection over the cap")
	if n := connectedPeers(t, d); n != 2 {
		t.Fatalf("%d peers connected, cap 2", n)
	}
	if !stillOpen(c1, r1) {
		t.Fatal("a connection under the cap was closed")
	}

	// Outgoing: at the cap, a new address is recorded but not dialled.
	var mu sync.Mutex
	accepted := 0
	h := startHostile(t, "127.0.1.6", tt, func(c net.Conn, r *peerwire.Reader) {
		mu.Lock()
		accepted++
		mu.Unlock()
		for {
			if _, err := r.ReadMessage(); err != nil {
				return
			}
		}
	})
	d.AddPeers([]netip.AddrPort{h.addr(t)})
	testenv.WaitFor(t, 10*time.Second, "the new address to reach the local swarm", func() bool {
		known := false
		onOwner(t, d.Local(), func() { known = d.Local().dialer.cands[h.addr(t)] != nil })
		return known
	})
	onOwner(t, d.Local(), func() {
		if d.Local().dialer.cands[h.addr(t)].dialing {
			t.Error("dialling at the peer cap")
		}
	})
	mu.Lock()
	if accepted != 0 {
		t.Errorf("dialled %d times at the peer cap", accepted)
	}
	mu.Unlock()
	// A slot frees up: the address is dialled.
	c1.Close()
	testenv.WaitFor(t, 10*time.Second, "a dial once a slot is free", func() bool { mu.Lock(); defer mu.Unlock(); return accepted == 1 })
	testenv.WaitFor(t, 10*time.Second, "the dialled peer to connect", func() bool { return connectedPeers(t, d) == 2 })
}

// A peer connected to a downloading swarm is told of every piece the swarm
// completes.
func TestHaveBroadcast(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	n := tt.Info.NumPieces()
	seeder := newTestSeeder(t, tt, 21)

	cfg := testConfig(tt, swarmtest.NewStorage(tt.Info, nil), 22)
	cfg.Listener = listen(t, "127.0.0.1")
	// Seed keeps the swarm open after completion: without it the swarm
	// closes at once and the last have may not be flushed.
	cfg.Seed = true
	leecher := newTestDownload(t, cfg)
	c, r := rawPeer(t, leecher, tt, "127.0.1.10", "-TEST00-haveobserver")
	writeMsgs(t, c, peerwire.Message{ID: peerwire.HaveNone})
	testenv.WaitFor(t, 10*time.Second, "the observer to connect", func() bool { return connectedPeers(t, leecher) == 1 })
	leecher.AddPeers([]netip.AddrPort{addrOf(t, seeder)})

	got := make([]bool, n)
	seen := 0
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for seen < n {
		m, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("after %d of %d haves: %v", seen, n, err)
		}
		switch {
		case m.KeepAlive:
		case m.ID == peerwire.Have:
			if got[m.Index] {
				t.Fatalf("have %d sent twice", m.Index)
			}
			got[m.Index] = true
			seen++
		case m.ID == peerwire.BitfieldMsg || m.ID == peerwire.HaveAll:
			t.Fatalf("unexpected %v after the first message", m.ID)
		}
	}
	waitComplete(t, leecher, 10*time.Second)
}

// In end game a block requested from two peers is cancelled on the slower
// one once the faster delivers it.
func TestEndGameCancelOnWire(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 256<<10, 64<<10)
	var mu sync.Mutex
	asked := map[uint64]bool{}
	var cancelled []uint64
	slow := startHostile(t, "127.0.1.20", tt, func(c net.Conn, r *peerwire.Reader) {
		c.Write(peerwire.AppendMessage(peerwire.AppendMessage(nil, peerwire.Message{ID: peerwire.HaveAll}), peerwire.Message{ID: peerwire.Unchoke}))
		for {
			m, err := r.ReadMessage()
			if err != nil {
				return
			}
			mu.Lock()
			switch m.ID {
			case peerwire.Request:
				asked[blockKey(int(m.Index), int(m.Begin))] = true
			case peerwire.Cancel:
				cancelled = append(cancelled, blockKey(int(m.Index), int(m.Begin)))
			}
			mu.Unlock()
		}
	})
	fast := startHostile(t, "127.0.1.21", tt, func(c net.Conn, r *peerwire.Reader) {
		c.Write(peerwire.AppendMessage(peerwire.AppendMessage(nil, peerwire.Message{ID: peerwire.HaveAll}), peerwire.Message{ID: peerwire.Unchoke}))
		for {
			m, err := r.ReadMessage()
			if err != nil {
				return
			}
			if m.ID == peerwire.Request {
				off := tt.Info.PieceOffset(int(m.Index)) + int64(m.Begin)
				b := peerwire.AppendMessage(nil, peerwire.Message{ID: peerwire.Piece, Index: m.Index, Begin: m.Begin, Block: tt.Data[off : off+int64(m.Length)]})
				if _, err := c.Write(b); err != nil {
					return
				}
			}
		}
	})
	st := swarmtest.NewStorage(tt.Info, nil)
	d := newTestDownload(t, testConfig(tt, st, 23))
	// The slow peer alone first: it is asked for every block.
	d.AddPeers([]netip.AddrPort{slow.addr(t)})
	blocks := int(tt.Info.Length / peerwire.BlockSize)
	testenv.WaitFor(t, 10*time.Second, "every block requested from the slow peer", func() bool { mu.Lock(); defer mu.Unlock(); return len(asked) == blocks })
	d.AddPeers([]netip.AddrPort{fast.addr(t)})
	waitComplete(t, d, 20*time.Second)
	if !bytes.Equal(st.Bytes(), tt.Data) {
		t.Fatal("data differs")
	}
	testenv.WaitFor(t, 10*time.Second, "a cancel on the slow peer", func() bool { mu.Lock(); defer mu.Unlock(); return len(cancelled) > 0 })
	mu.Lock()
	defer mu.Unlock()
	for _, k := range cancelled {
		if !asked[k] {
			t.Fatalf("cancel for block %d/%d never requested", k>>32, uint32(k))
		}
	}
}

// A seeding swarm serves a 32 KiB request; a larger one, or one outside the
// torrent, is a protocol error: the connection is closed (no reject) and
// the address banned.
func TestServeLargeRequest(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20+1000, 64<<10)
	n := tt.Info.NumPieces()
	seeder := newTestSeeder(t, tt, 24)

	unchoked := func(ip, id string) (net.Conn, *peerwire.Reader) {
		c, r := rawPeer(t, seeder, tt, ip, id)
		writeMsgs(t, c, peerwire.Message{ID: peerwire.HaveNone}, peerwire.Message{ID: peerwire.Interested})
		for {
			m, err := r.ReadMessage()
			if err != nil {
				t.Fatalf("%s waiting for unchoke: %v", ip, err)
			}
			if m.ID == peerwire.Unchoke {
				return c, r
			}
		}
	}

	c, r := unchoked("127.0.1.30", "-TEST00-serve32k0000")
	req := peerwire.Message{ID: peerwire.Request, Index: 3, Begin: 16384, Length: 32768}
	writeMsgs(t, c, req)
	for {
		m, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for the block: %v", err)
		}
		if m.ID == peerwire.Reject {
			t.Fatalf("32 KiB request rejected: %+v", m)
		}
		if m.ID == peerwire.Piece {
			off := tt.Info.PieceOffset(3) + 16384
			if m.Index != 3 || m.Begin != 16384 || !bytes.Equal(m.Block, tt.Data[off:off+32768]) {
				t.Fatalf("wrong block: piece %d begin %d len %d", m.Index, m.Begin, len(m.Block))
			}
			break
		}
	}

	for _, bad := range []struct {
		ip   string
		what string
		req  peerwire.Message
	}{
		{"127.0.1.31", "32 KiB+1", peerwire.Message{ID: peerwire.Request, Index: 3, Begin: 0, Length: 32769}},
		{"127.0.1.32", "piece past the end", peerwire.Message{ID: peerwire.Request, Index: uint32(n), Begin: 0, Length: 16384}},
		{"127.0.1.33", "block past the short last piece", peerwire.Message{ID: peerwire.Request, Index: uint32(n - 1), Begin: 0, Length: 16384}},
	} {
		c, r := unchoked(bad.ip, "-TEST00-serve32kbad"+bad.ip[len(bad.ip)-1:])
		writeMsgs(t, c, bad.req)
		readUntilClosed(t, c, r, bad.what)
		testenv.WaitFor(t, 10*time.Second, bad.what+": the peer banned", func() bool { return seeder.Local().Banned(netip.MustParseAddr(bad.ip)) })
	}
	// The well-behaved leecher is still served.
	writeMsgs(t, c, req)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		m, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("honest peer after the bad ones: %v", err)
		}
		if m.ID == peerwire.Piece {
			return
		}
	}
}

// A dial whose handshake is never answered gives up (after
// outgoingHandshakeWait) and the swarm goes on to other peers: with one
// dial at a time, the seeder is only reached once the stuck dial has
// given up.
func TestDialTimeoutStuckHandshake(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	l := listen(t, "127.0.1.40")
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	closedByPeer := make(chan struct{}, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 512)
				for {
					if _, err := c.Read(buf); err != nil {
						break // never answers; ends when the dialer gives up
					}
				}
				select {
				case closedByPeer <- struct{}{}:
				default:
				}
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})

	seeder := newTestSeeder(t, tt, 25)

	st := swarmtest.NewStorage(tt.Info, nil)
	cfg := testConfig(tt, st, 26)
	cfg.DialTimeout = 300 * time.Millisecond
	cfg.HandshakeTimeout = 100 * time.Millisecond // the stuck dial waits 300 ms
	cfg.MaxDialing = 1
	d := newTestDownload(t, cfg)
	stuck := netip.MustParseAddrPort(l.Addr().String())
	d.AddPeers([]netip.AddrPort{stuck})
	testenv.WaitFor(t, 10*time.Second, "the stuck peer to be dialled", func() bool { mu.Lock(); defer mu.Unlock(); return len(conns) == 1 })
	d.AddPeers([]netip.AddrPort{addrOf(t, seeder)})
	select {
	case <-closedByPeer:
	case <-time.After(10 * time.Second):
		t.Fatal("the stuck handshake was not given up")
	}
	waitComplete(t, d, 20*time.Second)
	if !bytes.Equal(st.Bytes(), tt.Data) {
		t.Fatal("data differs")
	}
}
