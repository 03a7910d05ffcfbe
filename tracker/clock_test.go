package tracker

import (
	"testing"
	"time"
	"unsafe"
)

// clockStepped returns t as time.Now would report it after the system
// clock was stepped by step (whole seconds): the wall clock moved, the
// monotonic reading did not. The time package offers no way to build such a
// value, so this rewrites the wall field of time.Time's layout (Go 1.9+:
// with hasMonotonic set, bits 30..62 hold seconds since 1885 and ext the
// monotonic reading) and then checks that it did exactly that, so a change
// of layout fails the test instead of weakening it.
func clockStepped(tb testing.TB, t time.Time, step time.Duration) time.Time {
	tb.Helper()
	if step%time.Second != 0 {
		tb.Fatalf("clockStepped: step %v is not whole seconds", step)
	}
	type layout struct {
		wall uint64
		ext  int64
		loc  *time.Location
	}
	const hasMonotonic = 1 << 63
	out := t
	l := (*layout)(unsafe.Pointer(&out))
	if l.wall&hasMonotonic == 0 {
		tb.Fatal("clockStepped: the time has no monotonic reading")
	}
	sec := (l.wall << 1) >> 31
	sec = uint64(int64(sec) + int64(step/time.Second))
	l.wall = hasMonotonic | sec<<30 | l.wall&(1<<30-1)
	if d := out.Sub(t); d != 0 {
		tb.Fatalf("clockStepped: monotonic reading moved by %v", d)
	}
	if d := out.Round(0).Sub(t.Round(0)); d != step {
		tb.Fatalf("clockStepped: wall clock moved by %v, want %v", d, step)
	}
	return out
}

// TestPeerListTTLSurvivesClockSteps: peer ages are measured on the
// monotonic clock. Before the fix (Unix nanoseconds) a step forward
// expired every peer and a step back kept stale ones for the step's length.
func TestPeerListTTLSurvivesClockSteps(t *testing.T) {
	for _, step := range []time.Duration{time.Hour, -time.Hour} {
		t0 := time.Now()
		pl := newPeerList(10, time.Minute)
		pl.Add(t0, []Peer{peerN(1), peerN(2)})
		soon := clockStepped(t, t0.Add(time.Second), step)
		if d := pl.Expire(soon); d != 0 {
			t.Fatalf("clock stepped %v: %d peers expired one second after they were reported (ttl 1m)", step, d)
		}
		pl.Add(clockStepped(t, t0.Add(30*time.Second), step), []Peer{peerN(3)})
		if s := pl.Snapshot(); s[0].LastSeen.Sub(t0) != 30*time.Second || s[1].FirstSeen.Sub(t0) != 0 {
			t.Fatalf("clock stepped %v: seen at %v and %v, want 30s and 0", step, s[0].LastSeen.Sub(t0), s[1].FirstSeen.Sub(t0))
		}
		later := clockStepped(t, t0.Add(61*time.Second), step)
		if d := pl.Expire(later); d != 2 {
			t.Fatalf("clock stepped %v: %d peers expired 61 s after they were reported, want 2 (ttl 1m)", step, d)
		}
		if got := order(pl); got != "3 " {
			t.Fatalf("clock stepped %v: left %q, want peer 3", step, got)
		}
	}
}

// TestRetryAfterClockStep: the end of a tracker's back-off is kept on the
// monotonic clock. Before the fix a step back of an hour delayed the retry
// by an hour, and a step forward retried at once, ignoring the back-off.
func TestRetryAfterClockStep(t *testing.T) {
	c := newTestClient(t, func(c *Config) { c.BackoffMin = 20 * time.Second; c.BackoffMax = 20 * time.Second })
	for _, step := range []time.Duration{-time.Hour, time.Hour} {
		a := newAnnouncer(c.Client, TorrentConfig{Tiers: [][]string{{"http://x.test/announce"}}}, false)
		p := a.pipes[0]
		t0 := time.Now()
		retry := p.backOff(t0)
		if d := retry.Sub(t0); d < 15*time.Second || d > 25*time.Second {
			t.Fatalf("back-off %v, want 20s ± 25%%", d)
		}
		// Deactivated meanwhile (another tracker took over); activated
		// again 1 s later, after the system clock was stepped.
		now := clockStepped(t, t0.Add(time.Second), step)
		p.wishes.Store(wishActivate)
		p.applyWishes(now)
		if got, want := p.nextAt.Sub(now), retry.Sub(t0)-time.Second; got != want {
			t.Errorf("clock stepped %v: next announce in %v, want %v (the rest of the back-off)", step, got, want)
		}
		p.cancelSchedule()
	}
}
