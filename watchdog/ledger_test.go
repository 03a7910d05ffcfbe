package watchdog

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func testLedger(t *testing.T, mutate ...func(*Config)) *ledger {
	t.Helper()
	cfg := DefaultConfig()
	cfg.History = 8
	for _, m := range mutate {
		m(&cfg)
	}
	return newLedger(time.Unix(1000, 0), cfg)
}

// checkHeap verifies the heap order and the back-pointers.
func checkHeap(t *testing.T, l *ledger) {
	t.Helper()
	for i, s := range l.heap {
		if int(l.slots[s].hidx) != i {
			t.Fatalf("slot %d hidx %d, at heap position %d", s, l.slots[s].hidx, i)
		}
		if i > 0 && l.less(i, (i-1)/2) {
			t.Fatalf("heap order broken at %d", i)
		}
	}
}

// TestLedgerAgainstModel drives the ledger with random operations and checks
// it against a naive map model: alerts exactly once, at the right time, for
// the right packets; evictions after retention; pending counts.
func TestLedgerAgainstModel(t *testing.T) {
	const retention = 50
	l := testLedger(t, func(c *Config) { c.OverdueRetention = retention })
	type mp struct {
		deadline int64
		overdue  bool
	}
	model := map[ID]*mp{}
	rng := rand.New(rand.NewPCG(1, 2))
	var now int64
	var nextID ID
	var ids []ID
	for step := range 20000 {
		switch op := rng.IntN(10); {
		case op < 4:
			nextID++
			dl := now + rng.Int64N(200) - 20
			if !l.issue(nextID, "k", "o", now, dl) {
				t.Fatal("issue refused")
			}
			model[nextID] = &mp{deadline: dl}
			ids = append(ids, nextID)
		case op < 6 && len(ids) > 0:
			id := ids[rng.IntN(len(ids))]
			ok, late := l.fulfil(id, now, 1)
			m, want := model[id]
			if ok != want {
				t.Fatalf("step %d: fulfil(%d) ok=%v want %v", step, id, ok, want)
			}
			if want && late != (m.overdue || now > m.deadline) {
				t.Fatalf("step %d: late=%v for %+v at %d", step, late, m, now)
			}
			delete(model, id)
		case op < 7 && len(ids) > 0:
			id := ids[rng.IntN(len(ids))]
			_, want := model[id]
			if l.cancel(id) != want {
				t.Fatalf("step %d: cancel(%d) != %v", step, id, want)
			}
			delete(model, id)
		default:
			now += rng.Int64N(30)
			var got []ID
			l.expire(now, func(p Packet, late time.Duration) bool {
				m := model[p.ID]
				if m == nil || m.overdue {
					t.Fatalf("step %d: alert for %d (%+v)", step, p.ID, m)
				}
				if want := now - m.deadline; int64(late) != want {
					t.Fatalf("late %d want %d", late, want)
				}
				got = append(got, p.ID)
				return true
			})
			var want []ID
			for id, m := range model {
				if !m.overdue && m.deadline <= now {
					want = append(want, id)
					m.overdue = true
				}
			}
			for id, m := range model {
				if m.overdue && m.deadline+retention <= now {
					delete(model, id)
				}
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("step %d: alerts %v want %v", step, got, want)
			}
		}
		if l.len() != len(model) {
			t.Fatalf("step %d: ledger holds %d, model %d", step, l.len(), len(model))
		}
		if step%97 == 0 {
			checkHeap(t, l)
		}
	}
	checkHeap(t, l)
	k := l.kinds["k"]
	if k.pending != int64(len(model)) {
		t.Fatalf("pending counter %d, model %d", k.pending, len(model))
	}
	if k.issued != k.fulfilled+k.cancelled+k.expired+k.pending {
		t.Fatalf("counters do not add up: %+v", *k)
	}
}

// TestLedgerManyDeadlinesInOrder issues 30k packets with shuffled deadlines
// and checks that expiry yields them in deadline order, each once.
func TestLedgerManyDeadlinesInOrder(t *testing.T) {
	l := testLedger(t, func(c *Config) { c.OverdueRetention = 0 })
	const n = 30_000
	dls := rand.New(rand.NewPCG(3, 4)).Perm(n)
	for i, d := range dls {
		l.issue(ID(i+1), "block", "p", 0, int64(d))
	}
	var last int64 = -1
	count := 0
	for now := int64(0); now < n; now += 1000 {
		l.expire(now+999, func(p Packet, _ time.Duration) bool {
			d := int64(p.Deadline.Sub(l.base))
			if d < last || d > now+999 {
				t.Fatalf("deadline %d after %d (now %d)", d, last, now)
			}
			last = d
			count++
			return true
		})
	}
	if count != n {
		t.Fatalf("%d alerts, want %d", count, n)
	}
	if _, ok := l.nextDue(); ok {
		t.Fatal("heap not empty with retention 0")
	}
	if l.len() != n { // overdue packets stay pending until fulfilled
		t.Fatalf("len %d", l.len())
	}
}

func TestLedgerHistoryRing(t *testing.T) {
	l := testLedger(t) // History 8
	for i := range 20 {
		l.issue(ID(i+1), "k", "o", 0, 100)
		l.fulfil(ID(i+1), int64(i), int64(i))
	}
	r := l.recent(nil)
	if len(r) != 8 || r[0].ID != 13 || r[7].ID != 20 {
		t.Fatalf("recent ids %v", ids(r))
	}
	odd := l.recent(func(p Packet) bool { return p.ID%2 == 1 })
	if len(odd) != 4 || odd[0].ID != 13 {
		t.Fatalf("filtered %v", ids(odd))
	}
}

func ids(ps []Packet) []ID {
	var out []ID
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}

func TestHistBucketBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	check := func(v int64) {
		i := histBucket(v)
		low, width := histBounds(i)
		if v < low || v >= low+width {
			t.Fatalf("v=%d in bucket %d [%d,+%d)", v, i, low, width)
		}
		if low >= histSub && float64(width)/float64(low) > 1.0/histSub+1e-12 {
			t.Fatalf("bucket %d too wide: %d/%d", i, width, low)
		}
	}
	for v := range int64(5000) {
		check(v)
	}
	for range 200000 {
		check(rng.Int64N(histMaxValue + 1))
		check(int64(math.Exp(rng.Float64() * math.Log(float64(histMaxValue)))))
	}
	if histBucket(math.MaxInt64) != histBuckets-1 || histBucket(-5) != 0 {
		t.Fatal("out-of-range values not clamped")
	}
	if histBucket(histMaxValue) != histBuckets-1 {
		t.Fatalf("max value in bucket %d of %d", histBucket(histMaxValue), histBuckets)
	}
}

// TestHistQuantilePrecision compares histogram quantiles with exact ones on
// log-uniform samples from 1µs to 10min.
func TestHistQuantilePrecision(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var h histogram
	vals := make([]int64, 100_001)
	lo, hi := math.Log(1e3), math.Log(6e11)
	for i := range vals {
		vals[i] = int64(math.Exp(lo + rng.Float64()*(hi-lo)))
		h.record(time.Duration(vals[i]))
	}
	slices.Sort(vals)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
		rank := int(math.Ceil(q * float64(len(vals))))
		want := float64(vals[rank-1])
		got := float64(h.quantile(q))
		if math.Abs(got-want)/want > 1.0/(2*histSub)+0.001 {
			t.Errorf("q%.3f = %v, exact %v", q, time.Duration(got), time.Duration(want))
		}
	}
	if h.max != vals[len(vals)-1] || h.min != vals[0] {
		t.Fatalf("min/max %d/%d", h.min, h.max)
	}
	var empty histogram
	if empty.quantile(0.5) != 0 {
		t.Fatal("empty histogram quantile not 0")
	}
}

func TestSatSub(t *testing.T) {
	cases := []struct{ a, b, want int64 }{
		{5, 3, 2},
		{math.MaxInt64, -1, math.MaxInt64},
		{0, math.MinInt64 + 1, math.MaxInt64},
		{math.MinInt64 + 1, 5, math.MinInt64},
		{-3, -5, 2},
	}
	for _, c := range []struct{ a, b, want int64 }{
		{5, 3, 8},
		{math.MaxInt64, 1, math.MaxInt64},
		{math.MinInt64 + 1, -5, math.MinInt64},
		{-3, 5, 2},
	} {
		if got := satAdd(c.a, c.b); got != c.want {
			t.Errorf("satAdd(%d,%d) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
	for _, c := range cases {
		if got := satSub(c.a, c.b); got != c.want {
			t.Errorf("satSub(%d,%d) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestLedgerCompactAfterBurst(t *testing.T) {
	l := testLedger(t)
	const n = compactAbove * 2
	for i := range n {
		l.issue(ID(i+1), "k", "o", 0, int64(i))
	}
	l.compact(int64(time.Hour)) // not empty: keeps everything
	if l.len() != n || cap(l.slots) < n {
		t.Fatal("compact dropped a non-empty ledger")
	}
	for i := range n {
		l.fulfil(ID(i+1), 1, 1)
	}
	l.compact(int64(time.Hour))
	if cap(l.slots) != 0 || len(l.heap) != 0 || len(l.free) != 0 {
		t.Fatalf("not compacted: cap(slots)=%d", cap(l.slots))
	}
	// Still usable.
	if !l.issue(ID(n+1), "k", "o", 0, 5) || l.len() != 1 {
		t.Fatal("issue after compact failed")
	}
	l.expire(10, func(Packet, time.Duration) bool { return true })
	if k := l.kinds["k"]; k.overdue != 1 || k.fulfilled != n {
		t.Fatalf("%+v", *k)
	}
}
