package watchdog

import (
	"runtime"
	"testing"
	"time"
)

func newBenchWatchdog(b *testing.B) *Watchdog {
	b.Helper()
	w, err := New(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { w.Close() })
	return w
}

// reportPairs waits until the owner has applied everything (so the figure is
// sustained throughput, not just enqueueing) and reports Issue+Fulfil pairs/s.
func reportPairs(b *testing.B, w *Watchdog) {
	b.Helper()
	if err := w.Check(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if s := w.Totals(); s.Pending != 0 {
		b.Fatalf("after the run: %+v", s)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
	tot := w.Totals()
	b.ReportMetric(float64(tot.Stalls), "stalls")
	b.ReportMetric(float64(2*b.N)/float64(max(tot.Batches, 1)), "cmds/batch")
}

func BenchmarkIssueFulfil(b *testing.B) {
	w := newBenchWatchdog(b)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		t := w.Issue("block", "peer", 30*time.Second)
		w.Fulfil(t)
	}
	reportPairs(b, w)
}

func BenchmarkIssueFulfilParallel(b *testing.B) {
	w := newBenchWatchdog(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			t := w.Issue("block", "peer", 30*time.Second)
			w.Fulfil(t)
		}
	})
	reportPairs(b, w)
}

// BenchmarkIssueFulfilBacklog keeps 10,000 packets pending (a window of
// outstanding block requests) so the heap has real depth.
func BenchmarkIssueFulfilBacklog(b *testing.B) {
	w := newBenchWatchdog(b)
	const window = 10_000
	ring := make([]Ticket, window)
	for i := range ring {
		ring[i] = w.Issue("block", "peer", time.Duration(30+i%7)*time.Second)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		j := i % window
		w.Fulfil(ring[j])
		ring[j] = w.Issue("block", "peer", time.Duration(30+i%7)*time.Second)
	}
	for _, t := range ring {
		w.Fulfil(t)
	}
	reportPairs(b, w)
}

// BenchmarkPendingMemory reports the heap cost of one pending packet (slab
// entry, ID table cell, heap slot, with their growth slack) with 100,000
// packets pending.
func BenchmarkPendingMemory(b *testing.B) {
	const n = 100_000
	var perPacket float64
	for range b.N {
		b.StopTimer()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b.StartTimer()
		w, err := New(DefaultConfig())
		if err != nil {
			b.Fatal(err)
		}
		for i := range n {
			w.Issue("block", "peer", time.Hour)
			if i%1000 == 999 { // keep the command queue (not counted) small
				if err := w.Check(); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		perPacket = float64(after.HeapAlloc-before.HeapAlloc) / n
		if tot := w.Totals(); tot.Pending != n {
			b.Fatalf("pending %d", tot.Pending)
		}
		w.Close()
		b.StartTimer()
	}
	b.ReportMetric(perPacket, "B/pending")
}

// BenchmarkCheckLargeLedger measures a full owner round (drain, expiry check,
// timer) with 100,000 packets pending and none due: it must not scan.
func BenchmarkCheckLargeLedger(b *testing.B) {
	w := newBenchWatchdog(b)
	for i := range 100_000 {
		w.Issue("block", "peer", time.Hour+time.Duration(i)*time.Millisecond)
	}
	if err := w.Check(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if err := w.Check(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLedgerBacklog measures the owner's share alone: the passive
// ledger applying one issue and one fulfil with 10,000 packets pending.
func BenchmarkLedgerBacklog(b *testing.B) {
	cfg := DefaultConfig()
	l := newLedger(time.Now(), cfg)
	const window = 10_000
	for i := range window {
		l.issue(ID(i+1), "block", "peer", 0, int64(30+i%7)*int64(time.Second))
	}
	b.ResetTimer()
	for i := range b.N {
		id := ID(i + 1)
		l.fulfil(id, int64(i), 1000)
		l.issue(id+window, "block", "peer", int64(i), int64(i)+int64(30+i%7)*int64(time.Second))
	}
}
