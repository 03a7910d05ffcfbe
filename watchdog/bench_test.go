package watchdog

import (
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
	if s := w.Totals(); s.Pending != 0 || s.QueueDropped != 0 {
		b.Fatalf("after the run: %+v", s)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
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
