package watchdog

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestOverdueRaisesExactlyOneAlert(t *testing.T) {
	w, clk := newTestWatchdog(t)
	tk := w.Issue("announce", "udp://a", 10*time.Second)
	if tk.ID == 0 || tk.Kind != "announce" || tk.Owner != "udp://a" {
		t.Fatalf("bad ticket %+v", tk)
	}
	if !tk.Deadline.Equal(tk.Issued.Add(10 * time.Second)) {
		t.Fatalf("deadline %v, issued %v", tk.Deadline, tk.Issued)
	}
	clk.Advance(9 * time.Second)
	mustCheck(t, w)
	noAlert(t, w)

	clk.Advance(3500 * time.Millisecond)
	mustCheck(t, w)
	a := recvAlert(t, w)
	if a.Packet.ID != tk.ID || a.Packet.Kind != "announce" || a.Packet.Owner != "udp://a" {
		t.Fatalf("alert for wrong packet: %+v", a)
	}
	if a.Late != 2500*time.Millisecond {
		t.Fatalf("Late = %v, want 2.5s", a.Late)
	}
	if !a.Packet.Overdue || a.Packet.Fulfilled {
		t.Fatalf("alert packet flags wrong: %+v", a.Packet)
	}
	if !a.Packet.Deadline.Equal(tk.Deadline) || !a.Packet.Issued.Equal(tk.Issued) {
		t.Fatalf("alert times %v/%v, ticket %v/%v", a.Packet.Issued, a.Packet.Deadline, tk.Issued, tk.Deadline)
	}

	// Still pending, marked overdue, and never alerted again.
	clk.Advance(time.Minute)
	mustCheck(t, w)
	noAlert(t, w)
	p := w.Pending(nil)
	if len(p) != 1 || p[0].ID != tk.ID || !p[0].Overdue {
		t.Fatalf("Pending = %+v", p)
	}
	s := statsFor(t, w, "announce")
	if s.Overdue != 1 || s.Pending != 1 || s.Count != 0 || s.AlertsDropped != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestFulfilledBeforeDeadlineRaisesNone(t *testing.T) {
	w, clk := newTestWatchdog(t)
	tk := w.Issue("scrape", "http://t", time.Second)
	clk.Advance(400 * time.Millisecond)
	if took := w.Fulfil(tk); took != 400*time.Millisecond {
		t.Fatalf("took = %v, want 400ms", took)
	}
	clk.Advance(time.Hour)
	mustCheck(t, w)
	noAlert(t, w)
	if p := w.Pending(nil); len(p) != 0 {
		t.Fatalf("Pending = %+v", p)
	}
	s := statsFor(t, w, "scrape")
	if s.Count != 1 || s.Pending != 0 || s.Overdue != 0 || s.Late != 0 || s.Issued != 1 {
		t.Fatalf("stats %+v", s)
	}
	if s.Max != 400*time.Millisecond {
		t.Fatalf("Max = %v", s.Max)
	}
	r := w.Recent(nil)
	if len(r) != 1 || !r[0].Fulfilled || r[0].Took != 400*time.Millisecond || r[0].Overdue ||
		!r[0].FulfilledAt.Equal(tk.Issued.Add(400*time.Millisecond)) {
		t.Fatalf("Recent = %+v", r)
	}
}

func TestFulfilAfterOverdueRecordsTookAndLate(t *testing.T) {
	w, clk := newTestWatchdog(t)
	tk := w.Issue("announce", "udp://slow", time.Second)
	clk.Advance(2 * time.Second)
	mustCheck(t, w)
	recvAlert(t, w)
	clk.Advance(time.Second)
	if took := w.Fulfil(tk); took != 3*time.Second {
		t.Fatalf("took = %v", took)
	}
	mustCheck(t, w)
	s := statsFor(t, w, "announce")
	if s.Count != 1 || s.Late != 1 || s.Overdue != 1 || s.Pending != 0 || s.Max != 3*time.Second {
		t.Fatalf("stats %+v", s)
	}
	r := w.Recent(nil)
	if len(r) != 1 || !r[0].Fulfilled || !r[0].Overdue || r[0].Took != 3*time.Second {
		t.Fatalf("Recent = %+v", r)
	}
	noAlert(t, w)
}

func TestLateFulfilBeforeOwnerNoticedCountsLateWithoutAlert(t *testing.T) {
	w, clk := newTestWatchdog(t)
	tk := w.Issue("block", "peer1", time.Second)
	clk.Advance(1500 * time.Millisecond)
	w.Fulfil(tk) // applied in the same tick that would have judged it overdue
	mustCheck(t, w)
	noAlert(t, w)
	s := statsFor(t, w, "block")
	if s.Late != 1 || s.Overdue != 0 || s.Count != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestCancel(t *testing.T) {
	w, clk := newTestWatchdog(t)
	a := w.Issue("lease", "node1", time.Second)
	b := w.Issue("lease", "node2", time.Second)
	w.Cancel(a)
	clk.Advance(2 * time.Second)
	mustCheck(t, w)
	al := recvAlert(t, w)
	if al.Packet.ID != b.ID {
		t.Fatalf("alert for %d, want %d", al.Packet.ID, b.ID)
	}
	noAlert(t, w)
	s := statsFor(t, w, "lease")
	if s.Cancelled != 1 || s.Pending != 1 || s.Count != 0 || s.Overdue != 1 {
		t.Fatalf("stats %+v", s)
	}
	// Fulfil after Cancel is ignored (no latency sample).
	w.Fulfil(a)
	mustCheck(t, w)
	if s := statsFor(t, w, "lease"); s.Count != 0 {
		t.Fatalf("fulfil after cancel counted: %+v", s)
	}
	if tot := w.Totals(); tot.Unknown != 1 || tot.Pending != 1 {
		t.Fatalf("totals %+v", tot)
	}
}

func TestIssueAtScheduleVisibleViaPending(t *testing.T) {
	w, clk := newTestWatchdog(t)
	now := clk.Now()
	t2 := w.IssueAt("schedule", "udp://b", now.Add(30*time.Minute))
	t1 := w.IssueAt("schedule", "udp://a", now.Add(15*time.Minute))
	w.Issue("announce", "udp://a", 15*time.Second)
	w.Annotate(t1, "next announce (interval 900s)")

	got := w.Pending(func(p Packet) bool { return p.Kind == "schedule" })
	if len(got) != 2 {
		t.Fatalf("Pending = %+v", got)
	}
	if got[0].ID != t1.ID || got[1].ID != t2.ID {
		t.Fatalf("not ordered by deadline: %+v", got)
	}
	if !got[0].Deadline.Equal(now.Add(15*time.Minute)) || got[0].Owner != "udp://a" ||
		got[0].Note != "next announce (interval 900s)" || got[0].Fulfilled || got[0].Overdue {
		t.Fatalf("entry %+v", got[0])
	}
	if all := w.Pending(nil); len(all) != 3 || all[0].Kind != "announce" {
		t.Fatalf("Pending(nil) = %+v", all)
	}
	// The announce happens on time: fulfilling the schedule entry.
	clk.Advance(15 * time.Minute)
	w.Fulfil(t1)
	w.Cancel(t2)
	mustCheck(t, w)
	if got := w.Pending(func(p Packet) bool { return p.Kind == "schedule" }); len(got) != 0 {
		t.Fatalf("Pending after fulfil = %+v", got)
	}
}

func TestStatsPercentiles(t *testing.T) {
	w, clk := newTestWatchdog(t)
	// 1..1000 ms: median 500ms, p99 990ms, max 1000ms.
	tickets := make([]Ticket, 1000)
	for i := range tickets {
		tickets[i] = w.Issue("req", "x", time.Hour)
	}
	// Fulfil ticket i after (i+1) ms: walk the clock forward.
	for i := range tickets {
		clk.Advance(time.Millisecond)
		w.Fulfil(tickets[i])
	}
	s := statsFor(t, w, "req")
	if s.Count != 1000 || s.Pending != 0 {
		t.Fatalf("stats %+v", s)
	}
	within := func(name string, got, want time.Duration) {
		t.Helper()
		if d := float64(got-want) / float64(want); d > 0.035 || d < -0.035 {
			t.Errorf("%s = %v, want %v ±3.5%%", name, got, want)
		}
	}
	within("Median", s.Median, 500*time.Millisecond)
	within("P99", s.P99, 990*time.Millisecond)
	if s.Max != time.Second {
		t.Errorf("Max = %v, want exactly 1s", s.Max)
	}
}

func TestAlertOverflowDoesNotBlock(t *testing.T) {
	var logBuf bytes.Buffer
	w, clk := newTestWatchdog(t, func(c *Config) {
		c.AlertBuffer = 4
		c.Logger = slog.New(slog.NewTextHandler(&logBuf, nil))
	})
	for range 100 {
		w.Issue("peer", "p", time.Second)
	}
	clk.Advance(2 * time.Second)
	mustCheck(t, w) // would hang if the owner blocked on the full channel
	s := statsFor(t, w, "peer")
	if s.Overdue != 100 || s.AlertsDropped != 96 {
		t.Fatalf("stats %+v", s)
	}
	// Rate-limited warnings: at the 1st, 2nd, 4th ... 64th drop.
	if n := strings.Count(logBuf.String(), "alert channel full"); n != 7 {
		t.Fatalf("%d warnings logged, want 7:\n%s", n, logBuf.String())
	}
	n := 0
	for len(w.Alerts()) > 0 {
		<-w.Alerts()
		n++
	}
	if n != 4 {
		t.Fatalf("received %d alerts, want 4", n)
	}
	// The owner is still alive and answering.
	w.Issue("peer", "p", time.Second)
	if s := statsFor(t, w, "peer"); s.Pending != 101 {
		t.Fatalf("stats %+v", s)
	}
}

func TestMaxPendingDrops(t *testing.T) {
	w, clk := newTestWatchdog(t, func(c *Config) { c.MaxPending = 10 })
	var tks []Ticket
	for range 15 {
		tks = append(tks, w.Issue("k", "o", time.Second))
	}
	s := statsFor(t, w, "k")
	if s.Pending != 10 || s.Dropped != 5 || s.Issued != 15 {
		t.Fatalf("stats %+v", s)
	}
	for _, tk := range tks {
		if tk.ID == 0 {
			t.Fatal("dropped issue returned no ticket")
		}
		w.Fulfil(tk)
	}
	clk.Advance(time.Hour)
	mustCheck(t, w)
	noAlert(t, w)
	if s := statsFor(t, w, "k"); s.Count != 10 || s.Pending != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestOverdueRetentionEvicts(t *testing.T) {
	w, clk := newTestWatchdog(t, func(c *Config) { c.OverdueRetention = time.Minute })
	w.Issue("k", "o", time.Second)
	clk.Advance(2 * time.Second)
	mustCheck(t, w)
	recvAlert(t, w)
	clk.Advance(58 * time.Second)
	mustCheck(t, w)
	if s := statsFor(t, w, "k"); s.Pending != 1 || s.Expired != 0 {
		t.Fatalf("evicted too early: %+v", s)
	}
	clk.Advance(2 * time.Second)
	mustCheck(t, w)
	if s := statsFor(t, w, "k"); s.Pending != 0 || s.Expired != 1 || s.Overdue != 1 {
		t.Fatalf("stats %+v", s)
	}
	if r := w.Recent(nil); len(r) != 1 || r[0].Fulfilled || !r[0].Overdue {
		t.Fatalf("Recent = %+v", r)
	}
	noAlert(t, w)
}

func TestMaxKinds(t *testing.T) {
	w, _ := newTestWatchdog(t, func(c *Config) { c.MaxKinds = 2 })
	for _, k := range []string{"a", "b", "c", "d"} {
		w.Issue(k, "o", time.Second)
	}
	st := w.Stats()
	if len(st) != 3 || st[0].Kind != OtherKind || st[0].Pending != 2 {
		t.Fatalf("stats %+v", st)
	}
	// Pending still shows the real kinds.
	if p := w.Pending(func(p Packet) bool { return p.Kind == "d" }); len(p) != 1 {
		t.Fatalf("Pending = %+v", p)
	}
}

func TestRealClockAlert(t *testing.T) {
	cfg := DefaultConfig()
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	start := time.Now()
	fast := w.Issue("announce", "ok", 10*time.Second)
	slow := w.Issue("announce", "never", 50*time.Millisecond)
	w.Fulfil(fast)
	a := recvAlert(t, w) // the owner's own timer must fire, no Check
	if a.Packet.ID != slow.ID {
		t.Fatalf("alert for %+v", a.Packet)
	}
	if el := time.Since(start); el < 50*time.Millisecond {
		t.Fatalf("alert after %v, before the deadline", el)
	}
	if a.Late < 0 || a.Late > 2*time.Second {
		t.Fatalf("Late = %v", a.Late)
	}
	noAlert(t, w)
}

func TestConcurrentUse(t *testing.T) {
	w, clk := newTestWatchdog(t, func(c *Config) { c.AlertBuffer = 1 << 16 })
	const goroutines, per = 16, 2000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				tk := w.Issue("block", "peer", time.Minute)
				switch i % 4 {
				case 0, 1:
					w.Fulfil(tk)
				case 2:
					w.Cancel(tk)
				case 3: // left pending: goes overdue below
				}
				if i%500 == 0 && g%4 == 0 {
					w.Stats()
					w.Pending(func(p Packet) bool { return p.ID == tk.ID })
				}
			}
		}()
	}
	wg.Wait()
	total := int64(goroutines * per)
	s := statsFor(t, w, "block")
	if s.Issued != total || s.Count != total/2 || s.Cancelled != total/4 || s.Pending != total/4 {
		t.Fatalf("stats %+v", s)
	}
	clk.Advance(2 * time.Minute)
	mustCheck(t, w)
	seen := map[ID]bool{}
	for len(w.Alerts()) > 0 {
		a := <-w.Alerts()
		if seen[a.Packet.ID] {
			t.Fatalf("duplicate alert for %d", a.Packet.ID)
		}
		seen[a.Packet.ID] = true
	}
	if int64(len(seen)) != total/4 {
		t.Fatalf("%d alerts, want %d", len(seen), total/4)
	}
}

func TestCloseWithPendingNoLeakAndIdempotent(t *testing.T) {
	cfg := DefaultConfig()
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tks := make([]Ticket, 0, 1000)
	for range 1000 {
		tks = append(tks, w.Issue("k", "o", time.Hour))
	}
	w.Fulfil(tks[0])
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-w.Alerts(); ok {
		t.Fatal("alerts channel not closed")
	}
	// Harmless after Close.
	tk := w.Issue("k", "o", time.Second)
	if tk.ID == 0 {
		t.Fatal("no ticket after Close")
	}
	w.Fulfil(tk)
	if took := w.Fulfil(Ticket{}); took != 0 {
		t.Fatalf("Fulfil(zero Ticket) = %v", took)
	}
	w.Cancel(tks[1])
	w.Annotate(tks[2], "x")
	if err := w.Check(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Check after Close = %v", err)
	}
	if p := w.Pending(nil); p != nil {
		t.Fatalf("Pending after Close = %d packets", len(p))
	}
	st := w.Stats() // final figures
	if len(st) != 1 || st[0].Pending != 999 || st[0].Count != 1 {
		t.Fatalf("final stats %+v", st)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []func(*Config){
		func(c *Config) { c.AlertBuffer = -1 },
		func(c *Config) { c.MaxPending = 0 },
		func(c *Config) { c.MaxPending = 1<<30 + 1 },
		func(c *Config) { c.MaxQueued = 0 },
		func(c *Config) { c.Shards = -1 },
		func(c *Config) { c.OverdueRetention = -1 },
		func(c *Config) { c.History = -1 },
		func(c *Config) { c.MaxKinds = 0 },
	}
	for i, f := range bad {
		c := DefaultConfig()
		f(&c)
		if _, err := New(c); !errors.Is(err, ErrConfig) {
			t.Errorf("case %d: err = %v", i, err)
		}
	}
}

func TestIssueAtPastDeadlineAlertsAtOnce(t *testing.T) {
	w, clk := newTestWatchdog(t)
	tk := w.IssueAt("schedule", "x", clk.Now().Add(-time.Second))
	mustCheck(t, w)
	a := recvAlert(t, w)
	if a.Packet.ID != tk.ID || a.Late != time.Second {
		t.Fatalf("alert %+v", a)
	}
	// A zero deadline must not overflow Late.
	w.IssueAt("schedule", "zero", time.Time{})
	mustCheck(t, w)
	if a := recvAlert(t, w); a.Late <= 0 {
		t.Fatalf("Late = %v", a.Late)
	}
}

func TestReschedule(t *testing.T) {
	w, clk := newTestWatchdog(t)
	a := w.Issue("lease", "node1", 10*time.Second)
	b := w.Issue("lease", "node2", 10*time.Second)
	a = w.Reschedule(a, clk.Now().Add(time.Minute)) // extended before due
	if !a.Deadline.Equal(clk.Now().Add(time.Minute)) {
		t.Fatalf("ticket deadline %v", a.Deadline)
	}
	clk.Advance(11 * time.Second)
	mustCheck(t, w)
	if al := recvAlert(t, w); al.Packet.ID != b.ID {
		t.Fatalf("alert for %d, want %d", al.Packet.ID, b.ID)
	}
	noAlert(t, w)
	// The overdue one gets a new deadline: pending again, alerts once more.
	w.Reschedule(b, clk.Now().Add(5*time.Second))
	mustCheck(t, w)
	p := w.Pending(func(p Packet) bool { return p.ID == b.ID })
	if len(p) != 1 || p[0].Overdue || !p[0].Deadline.Equal(clk.Now().Add(5*time.Second)) {
		t.Fatalf("Pending = %+v", p)
	}
	clk.Advance(6 * time.Second)
	mustCheck(t, w)
	if al := recvAlert(t, w); al.Packet.ID != b.ID || al.Late != time.Second {
		t.Fatalf("second alert %+v", al)
	}
	noAlert(t, w)
	clk.Advance(43 * time.Second) // 11+6+43 = 60s: exactly at a's deadline
	mustCheck(t, w)
	if al := recvAlert(t, w); al.Packet.ID != a.ID || al.Late != 0 {
		t.Fatalf("alert %+v", al)
	}
	if s := statsFor(t, w, "lease"); s.Overdue != 3 || s.Pending != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// TestRealClockManyDeadlines: with the real clock and its single timer,
// 20,000 packets with deadlines spread over 200–300 ms — half fulfilled at
// once — yield exactly one alert per unfulfilled packet, none early.
func TestRealClockManyDeadlines(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AlertBuffer = 1 << 15
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	const n = 20_000
	want := map[ID]time.Time{}
	for i := range n {
		tk := w.Issue("block", "peer", 200*time.Millisecond+time.Duration(i%100)*time.Millisecond)
		if i%2 == 0 {
			w.Fulfil(tk)
		} else {
			want[tk.ID] = tk.Deadline
		}
	}
	timeout := time.After(10 * time.Second)
	for len(want) > 0 {
		select {
		case a := <-w.Alerts():
			dl, ok := want[a.Packet.ID]
			if !ok {
				t.Fatalf("unexpected or duplicate alert for %d", a.Packet.ID)
			}
			if now := time.Now(); now.Before(dl) {
				t.Fatalf("alert %v before the deadline", dl.Sub(now))
			}
			delete(want, a.Packet.ID)
		case <-timeout:
			t.Fatalf("%d alerts missing", len(want))
		}
	}
	mustCheck(t, w)
	noAlert(t, w)
	if s := statsFor(t, w, "block"); s.Overdue != n/2 || s.Count != n/2 || s.AlertsDropped != 0 {
		t.Fatalf("stats %+v", s)
	}
}
