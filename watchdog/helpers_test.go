package watchdog

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is a manually moved clock, safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type testOpt func(*Config)

// newTestWatchdog starts a Watchdog on a fake clock and closes it in Cleanup.
func newTestWatchdog(t *testing.T, opts ...testOpt) (*Watchdog, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	cfg := DefaultConfig()
	cfg.Now = clk.Now
	for _, o := range opts {
		o(&cfg)
	}
	w, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	return w, clk
}

func mustCheck(t *testing.T, w *Watchdog) {
	t.Helper()
	if err := w.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

// recvAlert waits (bounded) for one alert.
func recvAlert(t *testing.T, w *Watchdog) Alert {
	t.Helper()
	select {
	case a, ok := <-w.Alerts():
		if !ok {
			t.Fatal("alerts channel closed")
		}
		return a
	case <-time.After(5 * time.Second):
		t.Fatal("no alert within 5s")
	}
	return Alert{}
}

// noAlert asserts that no alert is queued. The owner sends alerts during
// Check, so after Check returns any alert is already in the buffer.
func noAlert(t *testing.T, w *Watchdog) {
	t.Helper()
	select {
	case a := <-w.Alerts():
		t.Fatalf("unexpected alert %+v", a)
	default:
	}
}

func statsFor(t *testing.T, w *Watchdog, kind string) KindStats {
	t.Helper()
	for _, s := range w.Stats() {
		if s.Kind == kind {
			return s
		}
	}
	t.Fatalf("no stats for kind %q", kind)
	return KindStats{}
}
