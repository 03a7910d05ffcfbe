package swarm

import (
	"log/slog"
	"slices"
	"testing"
	"time"

	"flotilla/swarm/swarmtest"
)

func TestLeaseBook(t *testing.T) {
	lb := newLeaseBook(10, func(i int) bool { return i == 0 }, 1)
	if lb.Left() != 9 {
		t.Fatalf("left %d", lb.Left())
	}
	a := lb.Take(0, 5, nil)
	b := lb.Take(1, 10, nil)
	if len(a) != 5 || len(b) != 4 || !lb.PoolEmpty() {
		t.Fatalf("take %v %v", a, b)
	}
	if slices.Contains(a, 0) || slices.Contains(b, 0) {
		t.Fatal("done piece leased")
	}
	// Worker 1 runs dry: end game duplicates worker 0's pieces.
	d := lb.Duplicate(1, 2, nil)
	if len(d) != 2 || !lb.Holds(0, d[0]) || !lb.Holds(1, d[0]) {
		t.Fatalf("duplicate %v", d)
	}
	others, fresh := lb.Done(d[0], 1)
	if !fresh || others != 1 {
		t.Fatalf("done: others %b fresh %v", others, fresh)
	}
	if _, fresh := lb.Done(d[0], 0); fresh {
		t.Fatal("done twice")
	}
	// Worker 0 fails: its pieces return to the pool, except those also
	// held by worker 1.
	lb.Return(0, lb.HeldBy(0, nil))
	back := lb.Take(2, 100, nil)
	if len(back) != 3 || slices.Contains(back, d[1]) {
		t.Fatalf("returned to pool %v (d=%v)", back, d)
	}
	if lb.Held(0) != 0 || lb.Held(1) != 5 {
		t.Fatalf("held %d %d", lb.Held(0), lb.Held(1))
	}
}

func TestLeaseTarget(t *testing.T) {
	if n := leaseTarget(0, 1<<20, 10, 8, 1000); n != 8 {
		t.Fatal(n)
	}
	if n := leaseTarget(100<<20, 1<<20, 10, 8, 500); n != 500 {
		t.Fatal(n)
	}
	if n := leaseTarget(5<<20, 1<<20, 10, 8, 500); n != 50 {
		t.Fatal(n)
	}
}

// An idle fast worker joins only started pieces whose every holder is
// slower, the fewest holders first, whatever their number.
func TestLeaseBookDuplicateFromSlower(t *testing.T) {
	lb := newLeaseBook(4, func(int) bool { return false }, 1)
	p := lb.Take(0, 1, nil)[0] // slow worker 0
	q := lb.Take(1, 1, nil)[0] // fast worker 1
	r := lb.Take(0, 1, nil)[0]
	lb.Duplicate(2, 1, nil) // worker 2 (slow too) holds a copy of one of them
	if got := lb.DuplicateFromSlower(3, 4, 1<<0|1<<2, nil); len(got) != 0 {
		t.Fatalf("unstarted pieces duplicated: %v", got)
	}
	for _, i := range []int{p, q, r} {
		for w := range 3 {
			lb.MarkStarted(w, i)
		}
	}
	got := lb.DuplicateFromSlower(3, 4, 1<<0|1<<2, nil)
	if slices.Contains(got, q) || len(got) != 2 || !slices.Contains(got, p) || !slices.Contains(got, r) {
		t.Fatalf("joined %v; want %d and %d (held by slower workers only), not %d (held by a faster one)", got, p, r, q)
	}
	// The fewest holders first.
	lb2 := newLeaseBook(3, func(int) bool { return false }, 1)
	a := lb2.Take(0, 1, nil)[0]
	b := lb2.Take(0, 1, nil)[0]
	lb2.Duplicate(1, 1, nil)
	two := a
	if !lb2.Holds(1, a) {
		two = b
	}
	one := a + b - two
	lb2.MarkStarted(0, a)
	lb2.MarkStarted(0, b)
	if got := lb2.DuplicateFromSlower(2, 1, 1<<0|1<<1, nil); len(got) != 1 || got[0] != one {
		t.Fatalf("joined %v; want %d (one holder) before %d (two)", got, one, two)
	}
}

// A worker running dry waits for a pending steal's pieces rather than
// duplicating a started piece, except near the end, where an answer that
// never comes (a node before WorkerEvent.Kept gives nothing back) would
// hold the end game up by stealWait.
func TestAwaitSteal(t *testing.T) {
	lb := newLeaseBook(100, func(int) bool { return false }, 1)
	a, b := &workerSlot{idx: 0, alive: true}, &workerSlot{idx: 1, alive: true}
	d := &Download{lb: lb, slots: []*workerSlot{a, b}}
	if d.awaitSteal() {
		t.Fatal("waits with no steal pending")
	}
	b.ask = []int{3, 4}
	if !d.awaitSteal() {
		t.Fatal("duplicates while a steal's pieces are on their way back")
	}
	b.alive = false
	if d.awaitSteal() {
		t.Fatal("waits on a gone worker's steal")
	}
	b.alive = true
	for i := 0; lb.Left() > 4*len(d.slots); i++ {
		lb.Done(i, -1)
	}
	if d.awaitSteal() {
		t.Fatalf("waits with %d pieces left", lb.Left())
	}
}

// DuplicateHeld takes unstarted pieces too, up to maxLeaseHolders a piece;
// Shared counts the pieces a worker gives back that another worker holds
// (a duplicate's copy dropped: counted as cancelled by the sub-chief).
func TestLeaseBookDuplicateHeldAndShared(t *testing.T) {
	lb := newLeaseBook(3, func(int) bool { return false }, 1)
	p := lb.Take(0, 1, nil)[0]
	q := lb.Take(0, 1, nil)[0]
	r := lb.Take(2, 1, nil)[0]
	if got := lb.DuplicateStarted(1, 3, maxLeaseHolders, nil); len(got) != 0 {
		t.Fatalf("DuplicateStarted took unstarted pieces %v", got)
	}
	got := lb.DuplicateHeld(1, 3, maxLeaseHolders, nil)
	if slices.Sort(got); !slices.Equal(got, slices.Sorted(slices.Values([]int{p, q, r}))) {
		t.Fatalf("DuplicateHeld took %v, want %d, %d and %d", got, p, q, r)
	}
	if got := lb.DuplicateHeld(3, 3, maxLeaseHolders, nil); len(got) != 0 {
		t.Fatalf("DuplicateHeld took %v from pieces with %d holders each", got, maxLeaseHolders)
	}
	if n := lb.Shared(0, []int{p, q}); n != 2 {
		t.Fatalf("Shared = %d, want 2 (worker 1 holds both)", n)
	}
	lb.Done(p, 1)
	if n := lb.Shared(0, []int{p, q}); n != 1 {
		t.Fatalf("Shared = %d after %d was done, want 1", n, p)
	}
}

// At the very end (no more pieces left than workers), an idle worker joins
// a piece another worker holds even while a steal has asked that piece
// back and is unanswered (the answer takes a round trip; a node before
// WorkerEvent.Kept sends none), and skipping its pieces until stealWait
// left the last piece of an 8-host run with its only holder, 0.14 s
// after the one before it, while seven links idled. If the holder does
// give the piece back, the copy is simply the only one.
func TestIdleWorkerJoinsPieceAskedBack(t *testing.T) {
	d, a, b, held := stealPending(t, 2)
	lb := d.lb
	d.refill(b, a.askAt, false)
	got := lb.HeldBy(b.idx, nil)
	if len(got) != 1 || !slices.Contains(held, got[0]) {
		t.Fatalf("the idle worker holds %v; want one of %v, which a pending steal asked back", got, held)
	}
	if eg := d.endGame; eg.Duplicated != 1 {
		t.Fatalf("end game %+v; want the copy counted", eg)
	}
	// The holder gives it back after all: the copy is the only one, not
	// back in the pool.
	lb.Return(a.idx, got)
	if !lb.PoolEmpty() || lb.Held(b.idx) != 1 {
		t.Fatalf("pool empty %v, the copy's holder holds %d: the piece given back should stay with it", lb.PoolEmpty(), lb.Held(b.idx))
	}
}

// TestStealAnsweredWithKeptPieces: a worker that gives nothing back but
// names the pieces it keeps (started) settles the steal at once, and an
// idle worker copies them then, not a stealWait later.
func TestStealAnsweredWithKeptPieces(t *testing.T) {
	d, a, b, held := stealPending(t, 6)
	lb, now := d.lb, a.askAt
	d.refill(b, now, false)
	if n := lb.Held(b.idx); n != 0 {
		t.Fatalf("before the answer the idle worker holds %d pieces; want none (more pieces left than workers, none known started)", n)
	}
	d.handle(slotEvent{slot: a.idx, ev: WorkerEvent{Kind: EventRevoked, Kept: held[:4]}})
	if len(a.ask) != 0 {
		t.Fatalf("steal still pending (%v) after an answer naming kept pieces", a.ask)
	}
	got := lb.HeldBy(b.idx, nil)
	if len(got) == 0 {
		t.Fatal("the idle worker got no copy of the pieces the answer said were started")
	}
	for _, i := range got {
		if !lb.Holds(a.idx, i) {
			t.Fatalf("the idle worker got piece %d, which the holder does not hold", i)
		}
	}
	// An answer that names none of the asked pieces answers another
	// Revoke: the steal stays pending.
	a.ask, a.askAt = []int{held[5]}, now
	d.handle(slotEvent{slot: a.idx, ev: WorkerEvent{Kind: EventRevoked}})
	if len(a.ask) != 1 {
		t.Fatalf("an empty answer settled the steal: ask %v", a.ask)
	}
}

// stealPending is a sub-chief of n pieces with two workers: a holds every
// piece, all of them asked back by a steal not yet answered, and b holds
// none.
func stealPending(t *testing.T, n int) (d *Download, a, b *workerSlot, held []int) {
	tt := swarmtest.NewTorrent(t, n*16<<10, 16<<10)
	cfg := testConfig(tt, swarmtest.NewStorage(tt.Info, nil), 9)
	lb := newLeaseBook(n, func(int) bool { return false }, 1)
	a = &workerSlot{w: newFakeWorker("a", tt), idx: 0, alive: true}
	b = &workerSlot{w: newFakeWorker("b", tt), idx: 1, alive: true}
	d = &Download{cfg: cfg, log: swarmtest.Logger(t, slog.LevelWarn), n: n, lb: lb, slots: []*workerSlot{a, b}, wd: newTestWatchdog(t)}
	held = lb.Take(a.idx, n, nil)
	a.ask, a.askAt = slices.Clone(held), time.Now()
	return d, a, b, held
}
