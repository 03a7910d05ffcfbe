package swarm

import (
	"slices"
	"testing"
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
