package dht

import (
	"net/netip"
	"testing"
	"time"
)

func addr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 6881)
}

// idAt returns an id sharing exactly prefix bits with self.
func idAt(self ID, prefix int) ID { return randomInBucket(self, prefix) }

// TestTableBuckets: k per bucket; a full bucket takes a newcomer only in
// place of a bad node, else caches it and asks for a ping of a
// questionable node; two failures make a node bad and the cached
// newcomer takes its place.
func TestTableBuckets(t *testing.T) {
	self := RandomID()
	now := time.Now()
	tb := newTable(self, 8, now)
	for i := range 8 {
		if p := tb.heard(nodeInfo{ID: idAt(self, 0), Addr: addr(i)}, true, now); p != nil {
			t.Fatalf("ping asked while the bucket has room")
		}
	}
	if tb.len() != 8 {
		t.Fatalf("len %d", tb.len())
	}
	newcomer := nodeInfo{ID: idAt(self, 0), Addr: addr(100)}
	if p := tb.heard(newcomer, true, now); p != nil {
		t.Fatal("all good: no ping expected")
	}
	if tb.len() != 8 {
		t.Fatal("a full bucket of good nodes took a newcomer")
	}
	later := now.Add(goodFor + time.Minute) // everyone questionable
	p := tb.heard(newcomer, true, later)
	if p == nil {
		t.Fatal("no ping asked for a questionable node")
	}
	tb.failed(p.Addr, later)
	if _, ok := tb.byAddr[p.Addr]; !ok {
		t.Fatal("one failure removed the node")
	}
	tb.failed(p.Addr, later)
	if _, ok := tb.byAddr[p.Addr]; ok {
		t.Fatal("a bad node stayed although a replacement waited")
	}
	if _, ok := tb.byAddr[newcomer.Addr]; !ok {
		t.Fatal("the replacement did not take the bad node's place")
	}
	// nodes that only queried us do not enter
	tb.heard(nodeInfo{ID: idAt(self, 3), Addr: addr(200)}, false, now)
	if _, ok := tb.byAddr[addr(200)]; ok {
		t.Fatal("a node that never answered entered the table")
	}
	// closest is ordered by distance
	cl := tb.closest(self, 3)
	for i := 1; i < len(cl); i++ {
		if closer(self, cl[i].ID, cl[i-1].ID) {
			t.Fatal("closest not sorted")
		}
	}
	if got := tb.staleBuckets(now.Add(time.Hour), 15*time.Minute); len(got) == 0 || commonPrefix(self, got[0]) != 0 {
		t.Fatalf("refresh targets %v", got)
	}
}

// TestLookupBounded: a lookup never has more than alpha in flight, never
// sends more than maxQueries, and ends when the k closest answered.
func TestLookupBounded(t *testing.T) {
	target := RandomID()
	l := newLookup(RandomID(), target, true, 8, 3, 20)
	var ns []nodeInfo
	for i := range 100 {
		ns = append(ns, nodeInfo{ID: RandomID(), Addr: addr(i)})
	}
	l.add(ns[:10], true)
	sent := 0
	for i := 0; !l.done(); i++ {
		next := l.next()
		if l.inflight > 3 {
			t.Fatalf("%d in flight", l.inflight)
		}
		if len(next) == 0 {
			t.Fatal("not done but nothing to ask")
		}
		c := next[0]
		sent++
		if i%4 == 3 {
			l.failed(c.Addr)
		} else {
			m := &msg{ID: c.ID, Nodes: ns[10+i%90 : 10+i%90+5], Values: []netip.AddrPort{addr(1000)}}
			l.answered(c.Addr, m)
		}
		for _, o := range next[1:] {
			l.failed(o.Addr)
		}
	}
	if l.queries > 20 {
		t.Fatalf("%d queries > 20", l.queries)
	}
	if len(l.peers) != 1 {
		t.Fatalf("peers %v", l.peers)
	}
	if len(l.cands) > l.maxCands() {
		t.Fatalf("%d candidates kept", len(l.cands))
	}
}

// TestPeerStoreBounds: per info-hash the oldest entry makes room; the
// total refuses; entries expire.
func TestPeerStoreBounds(t *testing.T) {
	s := newPeerStore(3, 5, time.Minute)
	now := time.Now()
	a, b := RandomID(), RandomID()
	for i := range 4 {
		s.add(a, addr(i), now.Add(time.Duration(i)*time.Second))
	}
	if got := s.get(a, 10, now); len(got) != 3 {
		t.Fatalf("per-hash bound: %d peers", len(got))
	}
	s.add(b, addr(10), now)
	s.add(b, addr(11), now)
	if s.add(b, addr(12), now) {
		t.Fatal("total bound not kept")
	}
	s.expire(now.Add(2 * time.Minute))
	if s.len() != 0 || len(s.swarms) != 0 {
		t.Fatalf("%d left after expiry", s.len())
	}
}

// TestRateLimiter: burst then rate; the address table is bounded.
func TestRateLimiter(t *testing.T) {
	r := newRateLimiter(10, 5, 2)
	now := time.Now()
	ip := netip.MustParseAddr("10.0.0.1")
	n := 0
	for range 100 {
		if r.allow(ip, now) {
			n++
		}
	}
	if n != 5 {
		t.Fatalf("%d allowed of a burst of 5", n)
	}
	if !r.allow(ip, now.Add(200*time.Millisecond)) {
		t.Fatal("refill not allowed")
	}
	r.allow(netip.MustParseAddr("10.0.0.2"), now)
	if r.allow(netip.MustParseAddr("10.0.0.3"), now) {
		t.Fatal("a third address got in while two busy ones fill the table")
	}
	if !r.allow(netip.MustParseAddr("10.0.0.3"), now.Add(10*time.Second)) {
		t.Fatal("idle addresses were not swept")
	}
}
