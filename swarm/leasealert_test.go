package swarm

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"flotilla/internal/testenv"
	"flotilla/swarm/swarmtest"
	"flotilla/watchdog"
)

// The lease deadline's only clock is the watchdog (leaseclock.go). These
// tests give the sub-chief a watchdog on a fake clock, so that a lease is
// overdue exactly when the test moves that clock, whatever the real time.

// testClock is a fake clock for the watchdog, safe for concurrent use.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newClockWatchdog starts a watchdog on a fake clock with room for
// alertBuffer alerts (0: every alert is dropped).
func newClockWatchdog(t *testing.T, alertBuffer int) (*watchdog.Watchdog, *testClock) {
	t.Helper()
	clk := &testClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	c := watchdog.DefaultConfig()
	c.Now, c.AlertBuffer = clk.Now, alertBuffer
	wd, err := watchdog.New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wd.Close() })
	return wd, clk
}

// waitLeasePackets waits until each named worker has a pending lease
// packet in the watchdog (its deadline is then set on the watchdog's
// clock).
func waitLeasePackets(t *testing.T, wd *watchdog.Watchdog, names ...string) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, "lease packets of "+strings.Join(names, ", "), func() bool {
		has := map[string]bool{}
		for _, p := range wd.Pending(func(p watchdog.Packet) bool { return p.Kind == LeaseKind }) {
			_, name, _ := strings.Cut(p.Owner, " ")
			has[name] = true
		}
		for _, n := range names {
			if !has[n] {
				return false
			}
		}
		return true
	})
}

// waitTicks waits until the sub-chief has run a few ticks (each asks the
// watchdog about its leases) from now on.
func waitTicks(t *testing.T, d *testDownload, interval time.Duration) {
	t.Helper()
	from := time.Now()
	testenv.WaitFor(t, 10*time.Second, "sub-chief ticks", func() bool { return d.Status().Updated.Sub(from) >= 3*interval })
}

// forcedRevokes counts the forced Revoke calls f was given: how the
// sub-chief takes back a missed lease.
func (f *fakeWorker) forcedRevokes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.log {
		if c.revoke && c.force {
			n++
		}
	}
	return n
}

func leaseStats(t *testing.T, wd *watchdog.Watchdog) watchdog.KindStats {
	t.Helper()
	for _, s := range wd.Stats() {
		if s.Kind == LeaseKind {
			return s
		}
	}
	return watchdog.KindStats{Kind: LeaseKind}
}

// Nobody reads the watchdog's alerts and it drops every one, yet a missed
// lease is returned: the sub-chief asks the watchdog on every tick. It has
// no clock of its own — long past LeaseTimeout in real time nothing moves
// while the watchdog's clock stands still — and once the lease is overdue
// it is returned only when another worker can take it. The stalled worker
// is benched; a late delivery fulfils its missed packet and ends the bench.
func TestLeaseReturnedWhenItsAlertIsDropped(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 64*16<<10, 16<<10)
	cfg, _ := subChiefConfig(t, tt)
	cfg.LeaseTimeout = 100 * time.Millisecond
	wd, clk := newClockWatchdog(t, 0)
	cfg.Watchdog = wd
	d := newTestDownload(t, cfg)
	stalled := newFakeWorker("stalled", tt)
	stalled.hold, stalled.mute = true, true
	stalled.start()
	d.AddWorker(stalled)
	waitLeasePackets(t, wd, "local", "stalled")

	waitTicks(t, d, cfg.LeaseTimeout) // real time passes the deadline; the watchdog's does not
	if n := stalled.forcedRevokes(); n != 0 {
		t.Fatalf("lease returned (%d forced revokes) before the watchdog's clock reached its deadline", n)
	}
	clk.Advance(cfg.LeaseTimeout)
	waitTicks(t, d, cfg.StatusInterval)
	if n := stalled.forcedRevokes(); n != 0 {
		t.Fatalf("lease returned (%d forced revokes) while no other worker could take it", n)
	}
	if s := leaseStats(t, wd); s.Overdue != 2 || s.AlertsDropped != 2 {
		t.Fatalf("lease stats %+v, want both leases overdue and their alerts dropped", s)
	}

	spare := newFakeWorker("spare", tt) // its deadline is on the moved clock
	spare.hold = true
	spare.start()
	d.AddWorker(spare)
	testenv.WaitFor(t, 10*time.Second, "the stalled worker's lease returned", func() bool { return stalled.forcedRevokes() > 0 })
	testenv.WaitFor(t, 10*time.Second, "the stalled worker benched", func() bool {
		return workerStates(d.Status())["stalled"] == WorkerBenched
	})
	if r := d.Status().Returned; r.Missed == 0 || r.Total() < r.Missed {
		t.Errorf("returned %+v, want the missed lease's pieces counted", r)
	}
	if n := spare.forcedRevokes(); n != 0 {
		t.Fatalf("spare worker, not overdue, had its lease returned (%d forced revokes)", n)
	}

	stalled.mu.Lock()
	stalled.hold = false // it delivers after all
	stalled.mu.Unlock()
	stalled.post(func() []WorkerEvent { return nil })
	testenv.WaitFor(t, 10*time.Second, "the late delivery to fulfil the missed packet", func() bool { return leaseStats(t, wd).Late > 0 })
	testenv.WaitFor(t, 10*time.Second, "the bench to end", func() bool {
		return workerStates(d.Status())["stalled"] == WorkerActive
	})
}

// The watchdog's alert alone drives the return: with no tick for an hour,
// a lease alert handed to LeaseAlert makes the sub-chief ask the watchdog
// at once, return the overdue leases and keep the one that is not.
func TestLeaseAlertReturnsLease(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 64*16<<10, 16<<10)
	cfg, _ := subChiefConfig(t, tt)
	cfg.StatusInterval = time.Hour
	wd, clk := newClockWatchdog(t, 16)
	cfg.Watchdog = wd
	d := newTestDownload(t, cfg)
	routed := make(chan struct{})
	go func() { // what the coordinator's loop does with the shared watchdog
		defer close(routed)
		for a := range wd.Alerts() {
			d.LeaseAlert(a)
		}
	}()
	t.Cleanup(func() { wd.Close(); <-routed })
	stalled := newFakeWorker("stalled", tt)
	stalled.hold, stalled.mute = true, true
	stalled.start()
	d.AddWorker(stalled)
	waitLeasePackets(t, wd, "local", "stalled")
	clk.Advance(cfg.LeaseTimeout / 2)
	spare := newFakeWorker("spare", tt)
	spare.hold = true
	spare.start()
	d.AddWorker(spare)
	waitLeasePackets(t, wd, "spare")

	clk.Advance(cfg.LeaseTimeout / 2) // local's and stalled's deadline, not spare's
	if err := wd.Check(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the stalled worker's lease returned on the alert", func() bool {
		return stalled.forcedRevokes() > 0 && d.local.forcedRevokes() > 0
	})
	if n := spare.forcedRevokes(); n != 0 {
		t.Fatalf("spare worker, not overdue, had its lease returned (%d forced revokes)", n)
	}
}

// A worker whose pieces our own storage holds back is throttled by us,
// not late: its overdue lease stays while the sub-chief holds a piece of
// it not yet stored, and returns once they are stored.
func TestLeaseKeptWhileStorageThrottles(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 64*16<<10, 16<<10)
	cfg, st := subChiefConfig(t, tt)
	g := gatedStorage{Storage: st, gate: make(chan struct{})}
	cfg.Storage = g
	wd, clk := newClockWatchdog(t, 16) // alerts unread: the ticks ask
	cfg.Watchdog = wd
	d := newTestDownload(t, cfg)
	slow := newFakeWorker("slow", tt).start()
	d.AddWorker(slow)
	testenv.WaitFor(t, 10*time.Second, "storage to throttle the worker", func() bool {
		slow.mu.Lock()
		defer slow.mu.Unlock()
		return slow.held == fakeInFlight
	})
	slow.mu.Lock()
	slow.hold = true // once released it delivers nothing more
	slow.mu.Unlock()
	waitLeasePackets(t, wd, "slow")
	clk.Advance(cfg.LeaseTimeout)
	spare := newFakeWorker("spare", tt)
	spare.hold = true
	spare.start()
	d.AddWorker(spare)
	waitLeasePackets(t, wd, "spare")
	waitTicks(t, d, cfg.StatusInterval)
	if n := slow.forcedRevokes(); n != 0 {
		t.Fatalf("lease returned (%d forced revokes) while our storage held the worker's pieces", n)
	}
	if !leaseOverdue(wd, "slow") {
		t.Fatal("test setup: the slow worker's lease is not overdue")
	}
	// Once stored, the pieces are released; the worker sends the one it
	// had queued (a delivery: its lease restarts) and then nothing.
	close(g.gate)
	testenv.WaitFor(t, 10*time.Second, "its pieces stored", func() bool {
		slow.mu.Lock()
		defer slow.mu.Unlock()
		return slow.held == 0 && slow.sent == len(slow.delivered)
	})
	waitTicks(t, d, cfg.StatusInterval)
	if n := slow.forcedRevokes(); n != 0 {
		t.Fatalf("lease returned (%d forced revokes) after a delivery restarted it", n)
	}
	clk.Advance(cfg.LeaseTimeout)
	testenv.WaitFor(t, 10*time.Second, "the lease returned once its pieces are stored", func() bool { return slow.forcedRevokes() > 0 })
}

// leaseOverdue reports whether the named worker's lease packet is
// pending and overdue in the watchdog.
func leaseOverdue(wd *watchdog.Watchdog, name string) bool {
	return len(wd.Pending(func(p watchdog.Packet) bool {
		return p.Kind == LeaseKind && p.Overdue && strings.HasSuffix(p.Owner, " "+name)
	})) > 0
}

// Consecutive misses double the bench, up to LeaseTimeout <<
// maxBenchShift: each round the stalled worker, back from its bench, is
// given pieces again, the watchdog's clock passes its deadline, and a
// fresh worker (whose deadline is later) can take over. The bench is read
// from the sub-chief's log line, which states it exactly.
func TestLeaseBenchDoubles(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 256*16<<10, 16<<10)
	cfg, _ := subChiefConfig(t, tt)
	cfg.LeaseTimeout = 50 * time.Millisecond
	wd, clk := newClockWatchdog(t, 16) // alerts unread: the ticks ask
	cfg.Watchdog = wd
	logs := &benchLog{}
	cfg.Logger = slog.New(logs)
	d := newTestDownload(t, cfg)
	stalled := newFakeWorker("stalled", tt)
	stalled.hold, stalled.mute = true, true
	stalled.start()
	d.AddWorker(stalled)
	for k := 1; k <= maxBenchShift+2; k++ {
		waitFreshLease(t, wd, "stalled")
		clk.Advance(cfg.LeaseTimeout)
		spare := newFakeWorker(fmt.Sprintf("spare%d", k), tt)
		spare.hold = true
		d.AddWorker(spare.start())
		testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("miss %d", k), func() bool { return len(logs.benches()) >= k })
		want := cfg.LeaseTimeout << min(k-1, maxBenchShift)
		if got := logs.benches()[k-1]; got != want {
			t.Fatalf("miss %d: benched for %v, want %v (all: %v)", k, got, want, logs.benches())
		}
	}
}

// waitFreshLease waits until the named worker has a lease packet that is
// not overdue.
func waitFreshLease(t *testing.T, wd *watchdog.Watchdog, name string) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, "a fresh lease of "+name, func() bool {
		return len(wd.Pending(func(p watchdog.Packet) bool {
			return p.Kind == LeaseKind && !p.Overdue && strings.HasSuffix(p.Owner, " "+name)
		})) > 0
	})
}

// benchLog is a slog.Handler that keeps the bench of every missed lease
// deadline of the worker "stalled".
type benchLog struct {
	mu sync.Mutex
	b  []time.Duration
}

func (h *benchLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *benchLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *benchLog) WithGroup(string) slog.Handler            { return h }
func (h *benchLog) Handle(_ context.Context, r slog.Record) error {
	if !strings.HasPrefix(r.Message, "lease deadline missed") {
		return nil
	}
	var worker string
	var bench time.Duration
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "worker":
			worker = a.Value.String()
		case "benched":
			bench = a.Value.Duration()
		}
		return true
	})
	if worker == "stalled" {
		h.mu.Lock()
		h.b = append(h.b, bench)
		h.mu.Unlock()
	}
	return nil
}

func (h *benchLog) benches() []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]time.Duration(nil), h.b...)
}
