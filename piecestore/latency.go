package piecestore

import (
	"sync/atomic"
	"time"
)

// LatencyBounds are the upper bounds of the buckets of a Latency, the
// last one excepted (+Inf): from a page-cache write to a disk that
// stalls.
var LatencyBounds = [...]time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// Latency is a histogram of durations: Counts[i] counts those up to
// LatencyBounds[i] (and above the previous bound); the last counts those
// above every bound. Count and Sum cover them all.
type Latency struct {
	Counts [len(LatencyBounds) + 1]int64
	Count  int64
	Sum    time.Duration
}

// latencyHist is a Latency that one goroutine records into and any reads
// (Stats): a fixed cost per store.
type latencyHist struct {
	counts [len(LatencyBounds) + 1]atomic.Int64
	sum    atomic.Int64
}

func (h *latencyHist) record(d time.Duration) {
	i := 0
	for i < len(LatencyBounds) && d > LatencyBounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// since records the time since start.
func (h *latencyHist) since(start time.Time) { h.record(time.Since(start)) }

func (h *latencyHist) snapshot() Latency {
	var l Latency
	for i := range h.counts {
		l.Counts[i] = h.counts[i].Load()
		l.Count += l.Counts[i]
	}
	l.Sum = time.Duration(h.sum.Load())
	return l
}
