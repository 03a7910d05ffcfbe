package coordinator

import (
	"errors"
	"net"
	"testing"
	"time"

	"flotilla/tracker"
)

// TestTrackerHealth drives the passive health record through the cases the
// warning must tell apart.
func TestTrackerHealth(t *testing.T) {
	const a, b = "http://a.example/announce", "udp://b.example:6969/announce"
	tiers := [][]string{{a}, {b}}
	t0 := time.Unix(1_000_000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	newHealth := func() *trackerHealth { return newTrackerHealth(t0, 15*time.Second, time.Minute) }
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	ok := func(url string) tracker.Update {
		return tracker.Update{URL: url, Kind: tracker.UpdateAnnounce, Response: &tracker.AnnounceResponse{}}
	}
	bad := func(url string) tracker.Update {
		return tracker.Update{URL: url, Kind: tracker.UpdateAnnounce, Err: refused}
	}
	same := func(got, want TrackersSilent) bool {
		if got.For != want.For || got.Lapsed != want.Lapsed || len(got.Errors) != len(want.Errors) {
			return false
		}
		for i := range got.Errors {
			if got.Errors[i].URL != want.Errors[i].URL || got.Errors[i].Err != want.Errors[i].Err {
				return false
			}
		}
		return true
	}

	t.Run("answered once, quiet since", func(t *testing.T) {
		h := newHealth()
		h.record(ok(a), at(time.Second))
		for _, d := range []time.Duration{16 * time.Second, time.Hour, 24 * time.Hour} {
			if w, warn := h.warning(at(d), 0, tiers); warn {
				t.Fatalf("at %v: %+v", d, w)
			}
		}
	})
	t.Run("never answered", func(t *testing.T) {
		h := newHealth()
		h.record(bad(a), at(time.Second))
		if _, warn := h.warning(at(14*time.Second), 0, tiers); warn {
			t.Fatal("warned before the silence was long enough")
		}
		w, warn := h.warning(at(15*time.Second), 0, tiers)
		want := TrackersSilent{For: 15 * time.Second, Errors: []TrackerError{{a, refused}}}
		if !warn || !same(w, want) {
			t.Fatalf("got %+v (%v), want %+v", w, warn, want)
		}
		if _, warn := h.warning(at(30*time.Second), 0, tiers); warn {
			t.Fatal("repeated within warnEvery")
		}
		if _, warn := h.warning(at(75*time.Second), 0, tiers); !warn {
			t.Fatal("not repeated after warnEvery")
		}
	})
	t.Run("no reply at all", func(t *testing.T) {
		h := newHealth()
		w, _ := h.warning(at(20*time.Second), 0, tiers)
		if want := (TrackersSilent{For: 20 * time.Second}); !same(w, want) {
			t.Fatalf("got %+v, want %+v", w, want)
		}
	})
	t.Run("peers, no tracker", func(t *testing.T) {
		h := newHealth()
		if _, warn := h.warning(at(time.Hour), 3, tiers); warn {
			t.Fatal("warned while there are peers")
		}
	})
	t.Run("one of two fails", func(t *testing.T) {
		h := newHealth()
		h.record(bad(a), at(time.Second))
		h.record(ok(b), at(time.Second))
		if _, warn := h.warning(at(time.Hour), 0, tiers); warn {
			t.Fatal("warned while a tracker answers")
		}
	})
	t.Run("all fail after answering", func(t *testing.T) {
		h := newHealth()
		h.record(ok(a), at(time.Second))
		h.record(ok(b), at(time.Second))
		h.record(bad(a), at(10*time.Minute))
		h.record(bad(b), at(20*time.Minute))
		if _, warn := h.warning(at(20*time.Minute+14*time.Second), 0, tiers); warn {
			t.Fatal("warned before the silence since the last one failed was long enough")
		}
		w, warn := h.warning(at(20*time.Minute+15*time.Second), 0, tiers)
		want := TrackersSilent{For: 15 * time.Second, Lapsed: true, Errors: []TrackerError{{a, refused}, {b, refused}}}
		if !warn || !same(w, want) {
			t.Fatalf("got %+v (%v), want %+v", w, warn, want)
		}
		h.record(ok(b), at(21*time.Minute))
		if _, warn := h.warning(at(time.Hour), 0, tiers); warn {
			t.Fatal("warned after a tracker answered again")
		}
	})
	t.Run("a failing scrape is not a failing tracker", func(t *testing.T) {
		h := newHealth()
		h.record(ok(a), at(time.Second))
		h.record(tracker.Update{URL: a, Kind: tracker.UpdateScrape, Err: refused}, at(2*time.Second))
		if _, warn := h.warning(at(time.Hour), 0, tiers); warn {
			t.Fatal("a scrape error made the tracker unhealthy")
		}
	})
}

// TestLatencyRing: the quantiles cover the newest LatencySamples answers;
// Answers counts them all.
func TestLatencyRing(t *testing.T) {
	var r latencyRing
	if s := r.stats(); s != (LatencyStats{}) {
		t.Errorf("empty ring: %+v", s)
	}
	for i := 1; i <= 100; i++ { // 1..100 ms: the newest 64 are 37..100
		r.add(time.Duration(i) * time.Millisecond)
	}
	s := r.stats()
	ms := time.Millisecond
	if s.Answers != 100 || s.Last != 100*ms || s.Max != 100*ms || s.P50 != 69*ms || s.P90 != 94*ms {
		t.Errorf("stats %+v", s)
	}
}
