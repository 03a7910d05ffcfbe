package main

import (
	"net/netip"
	"testing"
	"time"

	"flotilla/tracker"
)

// TestRelayPeersHoldsOwnAnnounces: the peers a node's own announces return
// in the first moments of a job wait for the hold (the coordinator's dealt
// peers are dialed first), are then given together, bounded, and later
// answers pass at once.
func TestRelayPeersHoldsOwnAnnounces(t *testing.T) {
	const hold = 300 * time.Millisecond
	updates := make(chan tracker.Update)
	got := make(chan []netip.AddrPort, 8)
	done := make(chan struct{})
	stopped := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(stopped)
		relayPeers(done, updates, func(a []netip.AddrPort) { got <- a }, hold)
	}()
	answer := func(n int, base byte) tracker.Update {
		r := &tracker.AnnounceResponse{}
		for i := range n {
			r.Peers = append(r.Peers, tracker.Peer{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, base, byte(i >> 8), byte(i)}), 6881)})
		}
		return tracker.Update{Response: r}
	}
	updates <- answer(3, 1)
	updates <- tracker.Update{} // a failed announce: nothing to relay
	updates <- answer(maxHeldPeers, 2)
	select {
	case a := <-got:
		if since := time.Since(start); since < hold {
			t.Fatalf("%d peers relayed %v after the start, before the %v hold", len(a), since, hold)
		}
		if len(a) != maxHeldPeers {
			t.Fatalf("held peers relayed: %d, want the bound %d", len(a), maxHeldPeers)
		}
		if a[0] != netip.MustParseAddrPort("10.1.0.0:6881") || a[3] != netip.MustParseAddrPort("10.2.0.0:6881") {
			t.Fatalf("held peers out of order: %v %v", a[0], a[3])
		}
	case <-time.After(10 * time.Second):
		t.Fatal("held peers never relayed")
	}
	updates <- answer(2, 3)
	select {
	case a := <-got:
		if len(a) != 2 || a[1] != netip.MustParseAddrPort("10.3.0.1:6881") {
			t.Fatalf("after the hold: relayed %v, want the answer's 2 peers", a)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an answer after the hold was not relayed")
	}
	close(done)
	<-stopped
	if len(got) != 0 {
		t.Fatalf("%d extra relays", len(got))
	}
}
