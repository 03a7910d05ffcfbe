package swarm

import (
	"math"
	"time"
)

// rateMeter is an exponentially weighted byte rate, updated by its owner.
type rateMeter struct {
	acc   int64     // bytes since last tick
	rate  float64   // bytes per second
	last  time.Time // last tick
	total int64
}

// Add counts n bytes.
func (m *rateMeter) Add(n int) {
	m.acc += int64(n)
	m.total += int64(n)
}

// Tick folds the bytes counted since the last tick into the rate. The
// weight of the new sample grows with the elapsed time (time constant 2 s)
// so irregular ticks do not bias the rate.
func (m *rateMeter) Tick(now time.Time) {
	if m.last.IsZero() {
		m.last = now
		return
	}
	dt := now.Sub(m.last).Seconds()
	if dt <= 0 {
		return
	}
	sample := float64(m.acc) / dt
	alpha := 1 - math.Exp(-dt/2)
	if m.rate == 0 {
		m.rate = sample
	} else {
		m.rate += alpha * (sample - m.rate)
	}
	m.acc = 0
	m.last = now
}

// Rate is the current estimate in bytes per second.
func (m *rateMeter) Rate() float64 { return m.rate }

// pipelineDepth is how many block requests to keep outstanding at a peer
// delivering rate bytes/s so that the pipe stays full for target latency:
// clamp(rate*target/blockSize, min, max). A peer with no measured rate yet
// gets start (slow start ends at the first rate sample).
func pipelineDepth(rate float64, target time.Duration, blockSize, start, lo, hi int) int {
	if rate <= 0 {
		return max(lo, min(start, hi))
	}
	d := int(rate * target.Seconds() / float64(blockSize))
	return max(lo, min(d, hi))
}
