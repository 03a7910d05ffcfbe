package peerswarm

import (
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"flotilla/peerwire"
	"flotilla/swarm/swarmtest"
)

// onOwner runs f on the local swarm's goroutine and waits for it.
func onOwner(t *testing.T, s *Swarm, f func()) {
	t.Helper()
	done := make(chan struct{})
	s.loop.Post(func() { f(); close(done) })
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the swarm's goroutine did not run the function")
	}
}

// A swarm told of more addresses than it can remember forgets the stalest
// ones that are not being dialed, keeping the newest.
func TestCandidatesBounded(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 4*16<<10, 16<<10)
	cfg := testConfig(tt, swarmtest.NewStorage(tt.Info, nil), 1)
	cfg.MaxPeers, cfg.MaxDialing = 1, 1
	d := newTestDownload(t, cfg)
	s := d.Local()
	// Closed ports on loopback: dials fail at once and count as failures.
	addr := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(20000+i))
	}
	var batch []netip.AddrPort
	for i := range maxCandidates + 500 {
		batch = append(batch, addr(i))
		if len(batch) == 500 {
			s.AddPeers(batch)
			batch = nil
		}
	}
	s.AddPeers(batch)
	var n int
	var newest bool
	onOwner(t, s, func() {
		n = len(s.dialer.cands)
		_, newest = s.dialer.cands[addr(maxCandidates+499)]
	})
	if n > maxCandidates {
		t.Fatalf("%d candidates remembered, limit %d", n, maxCandidates)
	}
	if !newest {
		t.Fatal("the newest address was forgotten")
	}
}

// A failed handshake with a peer that took the connection (a busy seeder)
// is retried within reachedBackoff; a failed connect backs off 30 s.
func TestDialerBacksOffLessAfterReachingThePeer(t *testing.T) {
	d := newDialer(1, 1, nil, func(netip.AddrPort, bool) {})
	up, down := netip.MustParseAddrPort("10.0.0.1:6881"), netip.MustParseAddrPort("10.0.0.2:6881")
	now := time.Now()
	d.cands[up] = &candidate{dialing: true}
	d.cands[down] = &candidate{dialing: true}
	d.finished(newConn{addr: up, err: io.ErrUnexpectedEOF, outgoing: true, reached: true}, now)
	d.finished(newConn{addr: down, err: io.ErrUnexpectedEOF, outgoing: true}, now)
	if got := d.cands[up].next.Sub(now); got != reachedBackoff {
		t.Errorf("after a failed handshake: retry in %v, want %v", got, reachedBackoff)
	}
	if got := d.cands[down].next.Sub(now); got != 30*time.Second {
		t.Errorf("after a failed connect: retry in %v, want 30s", got)
	}
}

// A peer that dialed us is not dialed back at the address a tracker
// gives for it: not at all once its extension handshake told its listen
// port, and only once (refused as a duplicate, its address then known)
// when it did not. Before, the refused dial was repeated every round.
func TestNoRedialOfPeerThatDialedUs(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 4*16<<10, 16<<10)
	cfg := testConfig(tt, swarmtest.NewStorage(tt.Info, nil), 1)
	cfg.Listener = listen(t, "127.0.0.1")
	d := newTestDownload(t, cfg)
	for _, tc := range []struct {
		name, ip  string
		tellsPort bool
		dials     int32
	}{
		{"without p", "127.0.0.7", false, 1},
		{"with p", "127.0.0.8", true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "-XX0001-dialedus" + tc.ip[len(tc.ip)-4:]
			l := listen(t, tc.ip)
			t.Cleanup(func() { l.Close() })
			var accepts atomic.Int32
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					accepts.Add(1)
					go func() {
						defer c.Close()
						if _, err := peerwire.ReadHandshake(c); err != nil {
							return
						}
						var pid [20]byte
						copy(pid[:], id)
						peerwire.WriteHandshake(c, peerwire.Handshake{InfoHash: tt.InfoHash, PeerID: pid})
						io.Copy(io.Discard, c)
					}()
				}
			}()
			var reserved [8]byte
			if tc.tellsPort {
				reserved = peerwire.DefaultReserved()
			}
			c := handshakeFrom(t, d, tt, tc.ip, id, reserved)
			go io.Copy(io.Discard, c)
			if tc.tellsPort {
				ext := peerwire.ExtHandshake{P: l.Addr().(*net.TCPAddr).Port}
				writeMsgs(t, c, peerwire.Message{ID: peerwire.Extended, ExtID: peerwire.ExtHandshakeID, ExtPayload: ext.Encode()})
			}
			s := d.Local()
			for n := 0; n == 0; {
				time.Sleep(20 * time.Millisecond)
				onOwner(t, s, func() { n = s.peers.n })
			}
			time.Sleep(200 * time.Millisecond) // its extension handshake is taken
			s.AddPeers([]netip.AddrPort{netip.MustParseAddrPort(l.Addr().String())})
			time.Sleep(2 * time.Second) // several dial rounds
			if n := accepts.Load(); n != tc.dials {
				t.Fatalf("the peer's listen address was dialed %d times, want %d", n, tc.dials)
			}
			var connected bool
			onOwner(t, s, func() { connected = s.peers.connectedTo(netip.MustParseAddrPort(l.Addr().String())) })
			if !connected {
				t.Fatal("the peer's listen address does not count as connected")
			}
		})
	}
}
