package loop

import "time"

// Pacer times an owner's periodic work (its status tick): every Busy
// interval while the unit has something to do, every Idle interval while
// it has not, so that a thousand idle units (seeding torrents without
// peers) wake a few times a second in all instead of thousands. The owner
// calls Ticked after each tick, saying whether it is idle now, and Wake
// on any other event of its loop: the next tick then comes within Busy.
// A Pacer belongs to its owner's goroutine.
type Pacer struct {
	t          *time.Timer
	busy, idle time.Duration
	idling     bool
}

// NewPacer starts a pacer whose first tick comes after busy. An idle
// interval not longer than busy never slows the ticks.
func NewPacer(busy, idle time.Duration) *Pacer {
	return &Pacer{t: time.NewTimer(busy), busy: busy, idle: max(idle, busy)}
}

// C delivers the ticks.
func (p *Pacer) C() <-chan time.Time { return p.t.C }

// Ticked arms the next tick: after the idle interval if idle, else after
// the busy one.
func (p *Pacer) Ticked(idle bool) {
	p.idling = idle
	if idle {
		p.t.Reset(p.idle)
	} else {
		p.t.Reset(p.busy)
	}
}

// Wake ends an idle wait: the next tick comes within the busy interval.
func (p *Pacer) Wake() {
	if p.idling {
		p.idling = false
		p.t.Reset(p.busy)
	}
}

// Idle reports whether the pacer waits the idle interval.
func (p *Pacer) Idle() bool { return p.idling }

// Stop stops the ticks.
func (p *Pacer) Stop() { p.t.Stop() }
