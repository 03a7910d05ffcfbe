package watchdog

import (
	"sync"
	"testing"
	"time"

	"flotilla/internal/testenv"
)

// Callers of a stuck or saturated owner: they do not block while its queue
// has room, then wait for room, and Close releases them.

// stickOwner holds the owner goroutine inside a Pending filter until the
// returned release function is called (the ledger must hold a packet).
func stickOwner(t *testing.T, w *Watchdog) (release func()) {
	t.Helper()
	entered, rel := make(chan struct{}), make(chan struct{})
	var once sync.Once
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Pending(func(Packet) bool {
			once.Do(func() { close(entered) })
			<-rel
			return true
		})
	}()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("filter never ran")
	}
	var relOnce sync.Once
	release = func() { relOnce.Do(func() { close(rel); <-done }) }
	t.Cleanup(release)
	return release
}

// TestCallersNeverBlockWhenOwnerStuck: while the owner is busy, Issue and
// Fulfil keep returning at once (the queue absorbs them) and nothing is lost.
func TestCallersNeverBlockWhenOwnerStuck(t *testing.T) {
	w, _ := newTestWatchdog(t)
	w.Issue("k", "o", time.Hour)
	mustCheck(t, w)
	release := stickOwner(t, w)

	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for range 10_000 {
			w.Fulfil(w.Issue("k", "o", time.Hour))
		}
	}()
	select {
	case <-finished:
	case <-time.After(5 * time.Second):
		t.Fatal("Issue/Fulfil blocked while the owner was busy")
	}
	release()
	s := statsFor(t, w, "k")
	if s.Issued != 10_001 || s.Count != 10_000 || s.Pending != 1 {
		t.Fatalf("stats %+v", s)
	}
	if st := w.Totals().Stalls; st != 0 {
		t.Fatalf("Stalls = %d", st)
	}
}

// TestFullQueueBackPressure: once a shard is full a caller waits for the
// owner instead of dropping a command, and resumes when it drains.
func TestFullQueueBackPressure(t *testing.T) {
	w, _ := newTestWatchdog(t, func(c *Config) { c.Shards = 1; c.MaxQueued = 100 })
	w.Issue("k", "o", time.Hour)
	mustCheck(t, w)
	release := stickOwner(t, w)

	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for range 150 { // 300 commands into a queue of 100
			w.Fulfil(w.Issue("k", "o", time.Hour))
		}
	}()
	testenv.WaitFor(t, 5*time.Second, "a stalled caller", func() bool { return w.stalls.Load() > 0 })
	select {
	case <-finished:
		t.Fatal("300 commands fit in a queue of 100")
	default:
	}
	release()
	select {
	case <-finished:
	case <-time.After(5 * time.Second):
		t.Fatal("caller still stalled after the owner drained")
	}
	s := statsFor(t, w, "k")
	if s.Issued != 151 || s.Count != 150 || s.Pending != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestCloseReleasesStalledCaller: Close must not leave a caller waiting on a
// full queue.
func TestCloseReleasesStalledCaller(t *testing.T) {
	w, _ := newTestWatchdog(t, func(c *Config) { c.Shards = 1; c.MaxQueued = 10 })
	w.Issue("k", "o", time.Hour)
	mustCheck(t, w)
	release := stickOwner(t, w)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for range 100 {
			w.Issue("k", "o", time.Hour)
		}
	}()
	testenv.WaitFor(t, 5*time.Second, "a stalled caller", func() bool { return w.stalls.Load() > 0 })
	closed := make(chan struct{})
	go func() { w.Close(); close(closed) }()
	release()
	for _, c := range []chan struct{}{closed, finished} {
		select {
		case <-c:
		case <-time.After(5 * time.Second):
			t.Fatal("Close or a stalled caller hung")
		}
	}
}
