// Package rate measures byte rates for their owner: no goroutines, no
// locks (the owner's goroutine adds and ticks).
package rate

import (
	"math"
	"time"
)

// Meter is an exponentially weighted byte rate, updated by its owner. The
// zero value is ready.
type Meter struct {
	acc  int64     // bytes since last tick
	rate float64   // bytes per second
	last time.Time // last tick
}

// Add counts n bytes.
func (m *Meter) Add(n int) {
	m.acc += int64(n)
}

// Tick folds the bytes counted since the last tick into the rate. The
// weight of the new sample grows with the elapsed time (time constant 2 s)
// so irregular ticks do not bias the rate.
func (m *Meter) Tick(now time.Time) {
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
func (m *Meter) Rate() float64 { return m.rate }
