package swarm

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"flotilla/internal/testenv"
	"flotilla/swarm/swarmtest"
)

func testAddrs(from, n int) []netip.AddrPort {
	var out []netip.AddrPort
	for i := from; i < from+n; i++ {
		// Closed loopback ports: the local swarm's dials are refused at once.
		out = append(out, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, byte(i >> 8), byte(i)}), 9))
	}
	return out
}

func addrsOf(rs []*peerRec) []netip.AddrPort {
	var out []netip.AddrPort
	for _, r := range rs {
		out = append(out, r.addr)
	}
	return out
}

func TestPeerBookFreshestFirstBounded(t *testing.T) {
	b := newPeerBook(4)
	a := testAddrs(1, 6)
	for _, x := range a[:5] {
		b.Add(x)
	}
	b.Add(a[2]) // reported again: freshest
	b.Add(a[5])
	// a[0] and a[1] were the stalest: dropped.
	want := []netip.AddrPort{a[5], a[2], a[4], a[3]}
	if got := addrsOf(b.Pick(10, 0, nil)); !slices.Equal(got, want) || b.Len() != 4 {
		t.Fatalf("book %v (len %d), want %v", got, b.Len(), want)
	}
	// Fewest holders first, freshest first among equals; dead workers'
	// bits do not count.
	rec := func(a netip.AddrPort) *peerRec { return b.byAP[a].Value.(*peerRec) }
	rec(a[5]).given = 1<<0 | 1<<1
	rec(a[2]).given = 1 << 1
	rec(a[4]).given = 1 << 3 // worker 3 is gone
	live := uint64(1<<0 | 1<<1 | 1<<2)
	if got, want := addrsOf(b.Pick(3, live, nil)), []netip.AddrPort{a[4], a[3], a[2]}; !slices.Equal(got, want) {
		t.Fatalf("pick %v, want %v", got, want)
	}
	if got, want := addrsOf(b.Orphans(live, nil)), []netip.AddrPort{a[4], a[3]}; !slices.Equal(got, want) {
		t.Fatalf("orphans %v, want %v", got, want)
	}
	b.Forget(1)
	if got, want := addrsOf(b.Orphans(live&^1, nil)), []netip.AddrPort{a[5], a[2], a[4], a[3]}; !slices.Equal(got, want) {
		t.Fatalf("orphans after forgetting worker 1: %v, want %v", got, want)
	}
}

// barrier waits until the sub-chief has run everything posted before it.
func barrier(t *testing.T, d *testDownload) {
	t.Helper()
	ran := make(chan struct{})
	d.loop.Post(func() { close(ran) })
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("sub-chief loop blocked")
	}
}

// localPeers returns the addresses the local worker was given, each once.
func localPeers(t *testing.T, d *testDownload) []netip.AddrPort {
	t.Helper()
	var out []netip.AddrPort
	for _, a := range d.local.peersGot() {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func (f *fakeWorker) peersGot() []netip.AddrPort {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []netip.AddrPort
	for _, p := range f.peers {
		out = append(out, p...)
	}
	return out
}

// The policy of peerbook.go: tracker peers are dealt out so that each
// goes to one worker; a re-announce sends nobody an address it has; a
// worker that joins mid-download gets its share at once, freshest first
// and bounded by MaxPeers; a departed worker's peers go to the others.
func TestSubChiefSpreadsPeersAcrossWorkers(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 64*16<<10, 16<<10)
	cfg, _ := subChiefConfig(t, tt)
	cfg.LeaseTimeout = time.Minute // nobody delivers; keep leases quiet
	cfg.MaxPeers = 8
	d := newTestDownload(t, cfg)
	var fs []*fakeWorker
	for k := range 3 {
		f := newFakeWorker(fmt.Sprintf("node%d", k+1), tt)
		f.hold = true
		fs = append(fs, f.start())
		d.AddWorker(f)
	}
	barrier(t, d)

	// (a) 40 addresses over 4 workers (local + 3): 10 each, none twice.
	first := testAddrs(1, 40)
	d.AddPeers(first)
	barrier(t, d)
	got := map[string][]netip.AddrPort{"local": localPeers(t, d)}
	for _, f := range fs {
		got[f.name] = f.peersGot()
	}
	holders := map[netip.AddrPort]int{}
	for name, as := range got {
		if len(as) != 10 {
			t.Errorf("%s got %d addresses, want 10: %v", name, len(as), as)
		}
		for _, a := range as {
			holders[a]++
		}
	}
	for _, a := range first {
		if holders[a] != 1 {
			t.Errorf("%v given to %d workers, want 1", a, holders[a])
		}
	}

	// A re-announce repeats the 40 and brings 4 new: only the new ones
	// are sent, one to each worker.
	fresh := testAddrs(100, 4)
	d.AddPeers(append(slices.Clone(first), fresh...))
	barrier(t, d)
	holders = map[netip.AddrPort]int{}
	for _, a := range localPeers(t, d) {
		holders[a]++
	}
	for _, f := range fs {
		as := f.peersGot()
		if len(as) != 11 {
			t.Errorf("%s got %d addresses after the re-announce, want 10+1: %v", f.name, len(as), as)
		}
		for _, a := range as {
			holders[a]++
		}
	}
	for _, a := range append(slices.Clone(first), fresh...) {
		if holders[a] != 1 {
			t.Errorf("%v given to %d workers, want 1", a, holders[a])
		}
	}

	// (b) A worker that joins now gets peers at once, before any announce:
	// min(MaxPeers, ceil(44/5)) = 8 of them, the freshest first.
	late := newFakeWorker("late", tt)
	late.hold = true
	late.start()
	d.AddWorker(late)
	barrier(t, d)
	late.mu.Lock()
	calls := slices.Clone(late.peers)
	late.mu.Unlock()
	if len(calls) != 1 || len(calls[0]) != cfg.MaxPeers {
		t.Fatalf("late worker got %v, want one call with %d addresses", calls, cfg.MaxPeers)
	}
	for _, a := range fresh {
		if !slices.Contains(calls[0], a) {
			t.Errorf("late worker's share %v lacks the fresh address %v", calls[0], a)
		}
	}
	lateHas := map[netip.AddrPort]bool{}
	for _, a := range calls[0] {
		if lateHas[a] {
			t.Errorf("late worker got %v twice", a)
		}
		lateHas[a] = true
	}

	// A worker that leaves: the addresses only it had go to one other
	// worker each; those the late worker also has are not sent again.
	gone := fs[0]
	goneHad := gone.peersGot()
	before := map[string]int{}
	for _, f := range append(fs[1:], late) {
		before[f.name] = len(f.peersGot())
	}
	gone.Close()
	var orphans []netip.AddrPort
	for _, a := range goneHad {
		if !lateHas[a] {
			orphans = append(orphans, a)
		}
	}
	redealt := func() map[netip.AddrPort]int {
		n := map[netip.AddrPort]int{}
		for _, f := range append(fs[1:], late) {
			for _, a := range f.peersGot()[before[f.name]:] {
				n[a]++
			}
		}
		for _, a := range localPeers(t, d) {
			if slices.Contains(goneHad, a) {
				n[a]++
			}
		}
		return n
	}
	testenv.WaitFor(t, 10*time.Second, "the departed worker's peers dealt out", func() bool { return len(redealt()) >= len(orphans) })
	n := redealt()
	for _, a := range orphans {
		if n[a] != 1 {
			t.Errorf("orphaned %v dealt to %d workers, want 1", a, n[a])
		}
	}
	if len(n) != len(orphans) {
		t.Errorf("dealt %d addresses after the departure, want the %d only it had: %v", len(n), len(orphans), n)
	}
}

// TestSubChiefDealsWorkerPeers: peers a worker learned (EventPeers, the
// local swarm's PEX) are dealt like a tracker's: each to one worker.
func TestSubChiefDealsWorkerPeers(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 64*16<<10, 16<<10)
	cfg, _ := subChiefConfig(t, tt)
	cfg.LeaseTimeout = time.Minute
	d := newTestDownload(t, cfg)
	f := newFakeWorker("node1", tt)
	f.hold = true
	d.AddWorker(f.start())
	barrier(t, d)
	learned := testAddrs(300, 6)
	d.loop.Post(func() { d.handle(slotEvent{slot: 1, ev: WorkerEvent{Kind: EventPeers, Addrs: learned}}) })
	barrier(t, d)
	holders := map[netip.AddrPort]int{}
	for _, a := range append(localPeers(t, d), f.peersGot()...) {
		holders[a]++
	}
	for _, a := range learned {
		if holders[a] != 1 {
			t.Errorf("%v given to %d workers, want 1", a, holders[a])
		}
	}
}

// Workers that join one by one while the sub-chief expects them (a
// coordinator opening sessions to seven swarm nodes it knows) each get
// their share counted over all eight: of the 9 addresses known (8
// seeders and the coordinator's own) ceil(9/8) = 2, raised to
// minPeerShare (3) while addresses held by fewer than three workers are
// left, spread evenly, instead of 5 for the first and the most dialed
// ones for the last. An aria2c seeder accepts three connections a
// second: no seeder is then dialed more than that at the start.
func TestSubChiefJoinShareCountsExpectedWorkers(t *testing.T) {
	known := testAddrs(1, 9)
	const nodes = 7
	holders, got := joinOneByOne(t, known, nodes)
	for k, g := range got {
		if len(g) < 2 || len(g) > minPeerShare {
			t.Errorf("node%d got %d addresses, want ceil(9/8) = 2 raised to at most %d: %v", k+1, len(g), minPeerShare, g)
		}
	}
	lo, hi := nodes+1, 0
	for _, a := range known {
		lo, hi = min(lo, holders[a]), max(hi, holders[a])
	}
	if hi-lo > 1 || hi > maxJoinHolders {
		t.Errorf("addresses held by %d to %d workers, want an even spread of at most %d: %v", lo, hi, maxJoinHolders, holders)
	}
}

// With few addresses known each worker still gets minPeerShare of them
// when no address is crowded: 3 seeders and the coordinator's own address
// for 3 hosts gave each node 2 (one of them the coordinator, with nothing
// to give at the start), and a node whose one seeder choked it idled.
func TestSubChiefJoinShareFloor(t *testing.T) {
	known := testAddrs(1, 4)
	holders, got := joinOneByOne(t, known, 2)
	for k, g := range got {
		if len(g) != minPeerShare {
			t.Errorf("node%d got %d addresses, want %d (ceil(4/3) = 2 raised to minPeerShare): %v", k+1, len(g), minPeerShare, g)
		}
	}
	for _, a := range known {
		if holders[a] > maxJoinHolders {
			t.Errorf("%v held by %d workers, want at most %d: %v", a, holders[a], maxJoinHolders, holders)
		}
	}
}

// joinOneByOne gives a sub-chief the known addresses (its local worker
// takes them all), then adds nodes workers one by one while it expects
// the rest, as the coordinator's link does. It returns how many workers
// hold each address and what each node got.
func joinOneByOne(t *testing.T, known []netip.AddrPort, nodes int) (map[netip.AddrPort]int, [][]netip.AddrPort) {
	t.Helper()
	tt := swarmtest.NewTorrent(t, 64*16<<10, 16<<10)
	cfg, _ := subChiefConfig(t, tt)
	cfg.LeaseTimeout = time.Minute
	d := newTestDownload(t, cfg)
	d.AddPeers(known)
	barrier(t, d)
	holders := map[netip.AddrPort]int{}
	for _, a := range localPeers(t, d) {
		holders[a]++
	}
	var got [][]netip.AddrPort
	d.ExpectWorkers(nodes)
	for k := range nodes {
		f := newFakeWorker(fmt.Sprintf("node%d", k+1), tt)
		f.hold = true
		f.start()
		d.ExpectWorkers(nodes - k - 1) // before adding it
		d.AddWorker(f)
		barrier(t, d)
		g := f.peersGot()
		got = append(got, g)
		for _, a := range g {
			holders[a]++
		}
	}
	return holders, got
}
