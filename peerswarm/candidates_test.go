package peerswarm

import (
	"io"
	"net/netip"
	"testing"
	"time"

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
