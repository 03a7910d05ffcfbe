package tracker

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func peerN(i int) Peer {
	return Peer{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 6881)}
}

func order(pl *peerList) string {
	s := ""
	for _, e := range pl.Snapshot() {
		s += fmt.Sprint(e.Addr.Addr().As4()[3], " ")
	}
	return s
}

func TestPeerListDedupAndFreshness(t *testing.T) {
	t0 := time.Unix(1000, 0)
	pl := newPeerList(10, time.Minute)
	if n := pl.Add(t0, []Peer{peerN(1), peerN(2), peerN(3)}); n != 3 {
		t.Fatalf("added %d, want 3", n)
	}
	if got := order(pl); got != "1 2 3 " {
		t.Fatalf("order %q: a batch keeps the tracker's order", got)
	}
	p3 := peerN(3)
	p3.ID = "01234567890123456789"
	if n := pl.Add(t0.Add(time.Second), []Peer{p3, peerN(4)}); n != 1 {
		t.Fatalf("added %d, want 1 (3 is a duplicate)", n)
	}
	if got := order(pl); got != "3 4 1 2 " {
		t.Fatalf("order %q after re-report", got)
	}
	s := pl.Snapshot()
	if s[0].ID != p3.ID || !s[0].FirstSeen.Equal(t0) || !s[0].LastSeen.Equal(t0.Add(time.Second)) {
		t.Fatalf("re-reported entry %+v: id updated, FirstSeen kept, LastSeen moved", s[0])
	}
	if pl.Len() != 4 {
		t.Fatalf("len %d", pl.Len())
	}
}

func TestPeerListExpiry(t *testing.T) {
	t0 := time.Unix(1000, 0)
	pl := newPeerList(10, time.Minute)
	pl.Add(t0, []Peer{peerN(1), peerN(2)})
	pl.Add(t0.Add(30*time.Second), []Peer{peerN(3)})
	pl.Add(t0.Add(40*time.Second), []Peer{peerN(1)}) // refreshed: survives
	if d := pl.Expire(t0.Add(59 * time.Second)); d != 0 {
		t.Fatalf("expired %d before the ttl", d)
	}
	if d := pl.Expire(t0.Add(60 * time.Second)); d != 1 {
		t.Fatalf("expired %d, want 1 (peer 2)", d)
	}
	if got := order(pl); got != "1 3 " {
		t.Fatalf("order %q", got)
	}
	if d := pl.Expire(t0.Add(100 * time.Second)); d != 2 || pl.Len() != 0 {
		t.Fatalf("expired %d, len %d", d, pl.Len())
	}
	pl.SetTTL(0)
	pl.Add(t0, []Peer{peerN(1)})
	if d := pl.Expire(t0.Add(1000 * time.Hour)); d != 0 {
		t.Fatal("ttl 0 must not expire")
	}
}

func TestPeerListBounded(t *testing.T) {
	t0 := time.Unix(1000, 0)
	pl := newPeerList(3, 0)
	pl.Add(t0, []Peer{peerN(1), peerN(2)})
	pl.Add(t0.Add(time.Second), []Peer{peerN(3), peerN(4)})
	if got := order(pl); got != "3 4 1 " {
		t.Fatalf("order %q: the stalest (2) must be dropped", got)
	}
	pl.Add(t0.Add(2*time.Second), []Peer{peerN(5), peerN(6), peerN(7), peerN(8)})
	if got := order(pl); got != "5 6 7 " {
		t.Fatalf("order %q: a batch larger than the cap keeps its freshest", got)
	}
	if !pl.Remove(peerN(6).Addr) || pl.Remove(peerN(6).Addr) || order(pl) != "5 7 " {
		t.Fatalf("remove: %q", order(pl))
	}
	if n := newPeerList(0, 0).Add(t0, []Peer{peerN(1)}); n != 0 {
		t.Fatal("a zero-capacity list holds nothing")
	}
}

func BenchmarkPeerListAdd(b *testing.B) {
	pl := newPeerList(200, time.Hour)
	batch := make([]Peer, 50)
	t0 := time.Unix(0, 0)
	for i := 0; b.Loop(); i++ {
		for j := range batch {
			batch[j] = peerN((i*50 + j) % 1000)
		}
		pl.Add(t0.Add(time.Duration(i)), batch)
	}
}
