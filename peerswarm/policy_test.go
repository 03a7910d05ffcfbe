package peerswarm

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestPipelineDepth(t *testing.T) {
	const bs = 16 << 10
	if d := pipelineDepth(0, time.Second, bs, 32, 4, 512); d != 32 {
		t.Fatalf("slow start %d", d)
	}
	if d := pipelineDepth(10<<10, time.Second, bs, 32, 4, 512); d != 4 {
		t.Fatalf("slow peer %d", d)
	}
	if d := pipelineDepth(1<<20, time.Second, bs, 32, 4, 512); d != 64 {
		t.Fatalf("1 MiB/s %d", d)
	}
	if d := pipelineDepth(1<<30, time.Second, bs, 32, 4, 512); d != 512 {
		t.Fatalf("fast peer %d", d)
	}
}

func TestChokerDownloading(t *testing.T) {
	c := newChoker(4, 30*time.Second, 1)
	now := time.Unix(0, 0)
	cands := []chokeCandidate{
		{Key: 1, Interested: true, Rate: 100},
		{Key: 2, Interested: true, Rate: 500},
		{Key: 3, Interested: true, Rate: 300},
		{Key: 4, Interested: true, Rate: 900, Snubbed: true},
		{Key: 5, Interested: false, Rate: 10000},
		{Key: 6, Interested: true, Rate: 200},
		{Key: 7, Interested: true, Rate: 0},
	}
	got := c.Decide(now, false, cands, nil)
	if len(got) != 4 || !slices.Equal(got[:3], []peerKey{2, 3, 6}) {
		t.Fatalf("unchoked %v, want fastest 2,3,6 + optimistic", got)
	}
	opt := got[3]
	if opt == 5 || opt == 2 || opt == 3 || opt == 6 {
		t.Fatalf("optimistic %d", opt)
	}
	// Same optimistic within 30 s, a new draw after.
	if got := c.Decide(now.Add(10*time.Second), false, cands, nil); got[3] != opt {
		t.Fatalf("optimistic changed early: %v", got)
	}
	seen := map[peerKey]bool{}
	for i := 1; i <= 40; i++ {
		g := c.Decide(now.Add(time.Duration(i)*31*time.Second), false, cands, nil)
		seen[g[3]] = true
	}
	if len(seen) < 2 {
		t.Fatalf("optimistic never rotated: %v", seen)
	}
}

func TestChokerSeedingRoundRobin(t *testing.T) {
	c := newChoker(2, 30*time.Second, 1)
	cands := []chokeCandidate{{Key: 1, Interested: true}, {Key: 2, Interested: true}, {Key: 3, Interested: true}}
	count := map[peerKey]int{}
	for range 3 {
		for _, k := range c.Decide(time.Unix(0, 0), true, cands, nil) {
			count[k]++
		}
	}
	if count[1] != 2 || count[2] != 2 || count[3] != 2 {
		t.Fatalf("round robin unfair: %v", count)
	}
}

func TestTrustBook(t *testing.T) {
	tb := newTrustBook(2)
	a, b, c := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3"), netip.MustParseAddr("127.0.0.4")
	// First offence, shared or sole: distrusted, not banned.
	if d, x := tb.HashFailed([]netip.Addr{a, b}, nil, nil); !slices.Equal(d, []netip.Addr{a, b}) || len(x) != 0 {
		t.Fatalf("first shared failure: distrusted %v banned %v", d, x)
	}
	if d, x := tb.HashFailed([]netip.Addr{c}, nil, nil); !slices.Equal(d, []netip.Addr{c}) || len(x) != 0 {
		t.Fatalf("first sole failure: distrusted %v banned %v", d, x)
	}
	// More shared failures (pieces in flight when a and b were first
	// distrusted): no further strike for the distrusted, whose blocks
	// there may be right; a newcomer among them gets its first.
	for range 3 {
		if d, x := tb.HashFailed([]netip.Addr{a, b}, nil, nil); len(d) != 0 || len(x) != 0 {
			t.Fatalf("shared failure after distrust: distrusted %v banned %v", d, x)
		}
	}
	d := netip.MustParseAddr("127.0.0.5")
	if dd, x := tb.HashFailed([]netip.Addr{a, d}, nil, nil); !slices.Equal(dd, []netip.Addr{d}) || len(x) != 0 || tb.Strikes(a) != 1 {
		t.Fatalf("shared failure with a newcomer: distrusted %v banned %v, a's strikes %d", dd, x, tb.Strikes(a))
	}
	// Repeat, alone: banned.
	if d, x := tb.HashFailed([]netip.Addr{a}, nil, nil); len(d) != 0 || !slices.Equal(x, []netip.Addr{a}) {
		t.Fatalf("repeat: distrusted %v banned %v", d, x)
	}
	if !tb.Banned(a) || tb.Distrusted(a) || tb.Banned(b) || !tb.Distrusted(b) || tb.Strikes(c) != 1 {
		t.Fatal("ban state")
	}
	// Blame proved b right: trusted again, and a later failure is a
	// first offence again.
	if !tb.Absolve(b) || tb.Distrusted(b) || tb.Absolve(b) || tb.Absolve(a) {
		t.Fatal("absolve")
	}
	if d, _ := tb.HashFailed([]netip.Addr{b}, nil, nil); !slices.Equal(d, []netip.Addr{b}) {
		t.Fatalf("after absolution: distrusted %v", d)
	}
	if !tb.Banned(netip.MustParseAddr("::ffff:127.0.0.2")) || !tb.Distrusted(netip.MustParseAddr("::ffff:127.0.0.3")) {
		t.Fatal("v4-mapped address not recognised")
	}
	tb.Ban(c)
	if tb.Distrusted(c) || !tb.Banned(c) {
		t.Fatal("protocol ban")
	}
}

func TestBlame(t *testing.T) {
	a, b := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")
	good := []byte("aaaabbbbcccc")
	bad := []byte("aaaaXbbbcccc")
	got := blame(bad, good, []netip.Addr{a, b, a}, 4, nil)
	if !slices.Equal(got, []netip.Addr{b}) {
		t.Fatalf("blamed %v, want only the sender of block 1", got)
	}
	if got := blame(good, good, []netip.Addr{a, b, {}}, 4, nil); len(got) != 0 {
		t.Fatalf("blamed %v for identical data", got)
	}
}
