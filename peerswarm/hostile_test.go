package peerswarm

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"bytes"

	"flotilla/internal/bitfield"
	"flotilla/internal/testenv"
	"flotilla/peerwire"
	"flotilla/swarm/swarmtest"
)

// hostilePeer is a misbehaving peer written for tests. It accepts
// connections on its own loopback address and runs behave on each after
// the handshake.
type hostilePeer struct {
	l    net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	conn []net.Conn
}

func startHostile(t *testing.T, ip string, tt *swarmtest.Torrent, behave func(c net.Conn, r *peerwire.Reader)) *hostilePeer {
	t.Helper()
	h := &hostilePeer{l: listen(t, ip)}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for {
			c, err := h.l.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conn = append(h.conn, c)
			h.mu.Unlock()
			h.wg.Add(1)
			go func() {
				defer h.wg.Done()
				defer c.Close()
				if _, err := peerwire.ReadHandshake(c); err != nil {
					return
				}
				var id [20]byte
				copy(id[:], "-HOSTILE-"+ip)
				if peerwire.WriteHandshake(c, peerwire.Handshake{Reserved: peerwire.DefaultReserved(), InfoHash: tt.InfoHash, PeerID: id}) != nil {
					return
				}
				behave(c, peerwire.NewReader(c, peerwire.DefaultLimits(tt.Info.NumPieces(), tt.Info.PieceLength, tt.Info.Length)))
			}()
		}
	}()
	t.Cleanup(func() {
		h.l.Close()
		h.mu.Lock()
		for _, c := range h.conn {
			c.Close()
		}
		h.mu.Unlock()
		h.wg.Wait()
	})
	return h
}

func (h *hostilePeer) addr(t *testing.T) netip.AddrPort {
	return netip.MustParseAddrPort(h.l.Addr().String())
}

func TestHostilePeers(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 4<<20, 128<<10)
	n := tt.Info.NumPieces()
	send := func(c net.Conn, ms ...peerwire.Message) error {
		var b []byte
		for _, m := range ms {
			b = peerwire.AppendMessage(b, m)
		}
		_, err := c.Write(b)
		return err
	}
	// Liar: claims everything, unchokes, answers every request at once
	// with garbage.
	liar := startHostile(t, "127.0.0.2", tt, func(c net.Conn, r *peerwire.Reader) {
		send(c, peerwire.Message{ID: peerwire.BitfieldMsg, Bitfield: bitfield.Full(n)}, peerwire.Message{ID: peerwire.Unchoke})
		junk := bytes.Repeat([]byte{0xAB}, peerwire.BlockSize)
		for {
			m, err := r.ReadMessage()
			if err != nil {
				return
			}
			if m.ID == peerwire.Request {
				if send(c, peerwire.Message{ID: peerwire.Piece, Index: m.Index, Begin: m.Begin, Block: junk[:m.Length]}) != nil {
					return
				}
			}
		}
	})
	// Oversized message after a valid have-all.
	big := startHostile(t, "127.0.0.3", tt, func(c net.Conn, r *peerwire.Reader) {
		send(c, peerwire.Message{ID: peerwire.HaveAll})
		var hdr [5]byte
		binary.BigEndian.PutUint32(hdr[:], 1<<30)
		hdr[4] = byte(peerwire.Piece)
		c.Write(hdr[:])
		c.Read(make([]byte, 1024))
	})
	// Out-of-range request.
	oor := startHostile(t, "127.0.0.4", tt, func(c net.Conn, r *peerwire.Reader) {
		send(c, peerwire.Message{ID: peerwire.HaveNone}, peerwire.Message{ID: peerwire.Interested},
			peerwire.Message{ID: peerwire.Request, Index: uint32(n + 5), Begin: 0, Length: 16384})
		c.Read(make([]byte, 1024))
	})
	// Bitfield with spare bits set (and of the wrong length).
	badbf := startHostile(t, "127.0.0.5", tt, func(c net.Conn, r *peerwire.Reader) {
		bf := bitfield.Full(n + 8)
		send(c, peerwire.Message{ID: peerwire.BitfieldMsg, Bitfield: bf})
		c.Read(make([]byte, 1024))
	})

	seeder := newTestSeeder(t, tt, 1)

	st := swarmtest.NewStorage(tt.Info, nil)
	cfg := testConfig(tt, st, 2)
	cfg.Listener = listen(t, "127.0.0.1")
	leecher := newTestDownload(t, cfg)
	// Hostile peers first: the liar is the only source until it is banned
	// (its first failed piece distrusts it, its second bans it).
	leecher.AddPeers([]netip.AddrPort{liar.addr(t), big.addr(t), oor.addr(t), badbf.addr(t)})
	testenv.WaitFor(t, 10*time.Second, "the liar to be banned", func() bool { return leecher.Local().Banned(netip.MustParseAddr("127.0.0.2")) })
	leecher.AddPeers([]netip.AddrPort{addrOf(t, seeder)})
	waitComplete(t, leecher, 30*time.Second)
	if !bytes.Equal(st.Bytes(), tt.Data) {
		t.Fatal("downloaded data differs")
	}
	for _, ip := range []string{"127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		if !leecher.Local().Banned(netip.MustParseAddr(ip)) {
			t.Errorf("protocol-breaking peer %s not banned", ip)
		}
	}
	if leecher.Local().Banned(netip.MustParseAddr("127.0.0.1")) {
		t.Error("the honest seeder was banned")
	}
	// The status snapshot may be up to StatusInterval old.
	testenv.WaitFor(t, 10*time.Second, "the liar's two failed pieces in the status", func() bool { return leecher.Status().Workers[0].HashFails >= 2 })
	t.Logf("worker status %+v", leecher.Status().Workers[0])
}

// A peer that unchokes and then never answers: its requests time out and
// are re-requested elsewhere, and it is marked snubbed.
func TestSilentPeerTimeoutsAndSnub(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 2<<20, 64<<10)
	n := tt.Info.NumPieces()
	silent := startHostile(t, "127.0.0.6", tt, func(c net.Conn, r *peerwire.Reader) {
		b := peerwire.AppendMessage(nil, peerwire.Message{ID: peerwire.BitfieldMsg, Bitfield: bitfield.Full(n)})
		b = peerwire.AppendMessage(b, peerwire.Message{ID: peerwire.Unchoke})
		c.Write(b)
		for {
			if _, err := r.ReadMessage(); err != nil {
				return
			}
		}
	})
	st := swarmtest.NewStorage(tt.Info, nil)
	cfg := testConfig(tt, st, 3)
	cfg.RequestTimeout = 300 * time.Millisecond
	cfg.SnubTimeout = 600 * time.Millisecond
	cfg.StartPipeline = 8
	leecher := newTestDownload(t, cfg)
	leecher.AddPeers([]netip.AddrPort{silent.addr(t)})
	testenv.WaitFor(t, 10*time.Second, "requests to the silent peer to time out and the peer to be snubbed", func() bool {
		w := leecher.Status().Workers[0]
		return w.TimedOut > 0 && w.Snubbed == 1
	})
	if w := leecher.Status().Workers[0]; w.Outstanding > 1 {
		t.Fatalf("snubbed peer still has %d requests", w.Outstanding)
	}

	seeder := newTestSeeder(t, tt, 4)
	leecher.AddPeers([]netip.AddrPort{addrOf(t, seeder)})
	waitComplete(t, leecher, 20*time.Second)
	if !bytes.Equal(st.Bytes(), tt.Data) {
		t.Fatal("data differs")
	}
}

// Banned addresses are refused on accept and never dialled.
func TestBanListOnDialAndAccept(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	st := swarmtest.NewStorage(tt.Info, nil)
	cfg := testConfig(tt, st, 5)
	cfg.Listener = listen(t, "127.0.0.1")
	d := newTestDownload(t, cfg)
	banned := netip.MustParseAddr("127.0.0.7")
	done := make(chan struct{})
	d.Local().loop.Post(func() { d.Local().ban(banned); close(done) })
	<-done

	// Accept: a banned address gets no handshake back.
	c := dialFrom(t, d, "127.0.0.7", nil)
	var id [20]byte
	peerwire.WriteHandshake(c, peerwire.Handshake{Reserved: peerwire.DefaultReserved(), InfoHash: tt.InfoHash, PeerID: id})
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := peerwire.ReadHandshake(c); err == nil {
		t.Fatal("banned peer got a handshake")
	}

	// Dial: a banned address is never dialled (checked after an unbanned
	// one given at the same time was dialled).
	h := startHostile(t, "127.0.0.7", tt, func(net.Conn, *peerwire.Reader) {})
	ok := startHostile(t, "127.0.0.8", tt, func(c net.Conn, r *peerwire.Reader) { r.ReadMessage() })
	d.AddPeers([]netip.AddrPort{h.addr(t), ok.addr(t)})
	testenv.WaitFor(t, 10*time.Second, "the unbanned peer to be dialled", func() bool { ok.mu.Lock(); defer ok.mu.Unlock(); return len(ok.conn) > 0 })
	h.mu.Lock()
	accepted := len(h.conn)
	h.mu.Unlock()
	if accepted != 0 {
		t.Fatalf("banned address dialled %d times", accepted)
	}
}
