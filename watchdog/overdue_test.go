package watchdog

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// Overdue answers from the ledger on the watchdog's clock, also for the
// packets whose alert was dropped: pending packets are overdue once
// expire has marked them (not before their deadline, and the question
// itself applies what is queued and judges deadlines first), a packet the
// ledger no longer holds (evicted after its retention) or never held (the
// ledger was full) is overdue once its deadline has passed.
func TestOverdueAsksTheLedger(t *testing.T) {
	w, clk := newTestWatchdog(t, func(c *Config) {
		c.AlertBuffer = 0 // every alert is dropped: the owner must ask
		c.MaxPending = 3
		c.OverdueRetention = time.Minute
	})
	early := w.Issue("k", "o", time.Second)
	late := w.Issue("k", "o", 10*time.Second)
	evicted := w.Issue("k", "o", time.Second)
	untracked := w.Issue("k", "o", time.Second) // the ledger is full
	ts := []Ticket{early, late, evicted, untracked, {}}
	ask := func(want ...bool) {
		t.Helper()
		got, err := w.Overdue(ts)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("Overdue = %v, want %v", got, want)
		}
	}
	ask(false, false, false, false, false)
	clk.Advance(time.Second) // no Check: Overdue judges the deadlines itself
	ask(true, false, true, true, false)
	if s := statsFor(t, w, "k"); s.Overdue != 2 || s.AlertsDropped != 2 || s.Dropped != 1 {
		t.Fatalf("stats %+v", s)
	}
	clk.Advance(2 * time.Minute)
	ask(true, true, true, true, false)
	if s := statsFor(t, w, "k"); s.Expired != 3 || s.Pending != 0 {
		t.Fatalf("stats %+v", s)
	}
	w.Close()
	if _, err := w.Overdue(ts); !errors.Is(err, ErrClosed) {
		t.Fatalf("Overdue after Close: %v", err)
	}
}
