package main

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"flotilla/internal/testenv"
	"flotilla/tracker"
	"flotilla/tracker/trackertest"
)

// TestWarnWhenNoTrackerAnswers: a torrent whose only tracker is a closed
// loopback port, and no peers. coord warns on stderr, naming the tracker
// and its error, once the trackers have been silent for trackerSilentAfter,
// and repeats it no more often than trackerWarnEvery while it keeps trying.
func TestWarnWhenNoTrackerAnswers(t *testing.T) {
	silent, every := trackerSilentAfter, trackerWarnEvery
	trackerSilentAfter, trackerWarnEvery = 300*time.Millisecond, time.Second
	t.Cleanup(func() { trackerSilentAfter, trackerWarnEvery = silent, every })

	port := testenv.FreePort(t, "127.0.0.1") // free, so nothing answers there
	url := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) + "/announce"
	path, _ := writeTorrent(t, [][]string{{url}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	env := &cmdEnv{stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
	start := time.Now()
	codec := make(chan int, 1)
	go func() {
		codec <- run(ctx, env, []string{"download", path, "--out", t.TempDir(), "--listen", "127.0.0.1:0", "--progress", "none"})
	}()
	const warning = "warning: no tracker has answered"
	testenv.WaitFor(t, 20*time.Second, "two warnings", func() bool {
		return strings.Count(stderr.String(), warning) >= 2
	})
	cancel()
	code := <-codec
	elapsed := time.Since(start)
	errs := stderr.String()
	if code != exitInterrupted {
		t.Fatalf("exit %d, want %d:\n%s", code, exitInterrupted, errs)
	}
	var lines []string
	for _, l := range strings.Split(errs, "\n") {
		if strings.Contains(l, warning) {
			lines = append(lines, l)
		}
	}
	t.Logf("warnings:\n%s", strings.Join(lines, "\n"))
	if max := int(elapsed/trackerWarnEvery) + 1; len(lines) > max {
		t.Errorf("%d warnings in %v; want at most %d (one per %v):\n%s", len(lines), elapsed, max, trackerWarnEvery, errs)
	}
	for _, l := range lines {
		if !strings.Contains(l, url) || !strings.Contains(l, "connection refused") || !strings.Contains(l, "no peers") {
			t.Errorf("warning does not name the tracker and its error: %q", l)
		}
	}
}

// TestNoWarningWhileTrackersAnswer: a tracker that answers at once with no
// peers and a long interval (a seeder's usual situation: nobody wants the
// data yet). coord must not claim that no tracker has answered, however
// long after the answer it runs. Before the fix it warned as soon as the
// last (scheduled) answer was trackerSilentAfter old.
func TestNoWarningWhileTrackersAnswer(t *testing.T) {
	silent, every := trackerSilentAfter, trackerWarnEvery
	trackerSilentAfter, trackerWarnEvery = 200*time.Millisecond, 200*time.Millisecond
	t.Cleanup(func() { trackerSilentAfter, trackerWarnEvery = silent, every })

	tr := trackertest.NewHTTP()
	defer tr.Close()
	tr.SetBehavior(func(b *trackertest.HTTPBehavior) { b.Interval = 30 * time.Minute })
	path, _ := writeTorrent(t, [][]string{{tr.URL}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	env := &cmdEnv{stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
	codec := make(chan int, 1)
	go func() {
		codec <- run(ctx, env, []string{"download", path, "--out", t.TempDir(), "--listen", "127.0.0.1:0", "--progress", "none"})
	}()
	testenv.WaitFor(t, 20*time.Second, "the tracker's first announce", func() bool { return tr.Announces() > 0 })
	// Many times trackerSilentAfter and trackerWarnEvery: the old code
	// warned within the first of them. A slow machine only makes the
	// check weaker, never fail wrongly.
	time.Sleep(10 * trackerSilentAfter)
	cancel()
	if code := <-codec; code != exitInterrupted {
		t.Fatalf("exit %d, want %d:\n%s", code, exitInterrupted, stderr.String())
	}
	if errs := stderr.String(); strings.Contains(errs, "no tracker has answered") {
		t.Errorf("warned although the tracker answered:\n%s", errs)
	}
}

// TestTrackerHealth drives the passive health record through the cases the
// warning must tell apart.
func TestTrackerHealth(t *testing.T) {
	silent, every := trackerSilentAfter, trackerWarnEvery
	trackerSilentAfter, trackerWarnEvery = 15*time.Second, time.Minute
	t.Cleanup(func() { trackerSilentAfter, trackerWarnEvery = silent, every })

	const a, b = "http://a.example/announce", "udp://b.example:6969/announce"
	tiers := [][]string{{a}, {b}}
	t0 := time.Unix(1_000_000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	ok := func(url string) tracker.Update {
		return tracker.Update{URL: url, Kind: tracker.UpdateAnnounce, Response: &tracker.AnnounceResponse{}}
	}
	bad := func(url string) tracker.Update {
		return tracker.Update{URL: url, Kind: tracker.UpdateAnnounce, Err: refused}
	}

	t.Run("answered once, quiet since", func(t *testing.T) {
		h := newTrackerHealth(t0)
		h.record(ok(a), at(time.Second))
		for _, d := range []time.Duration{16 * time.Second, time.Hour, 24 * time.Hour} {
			if msg, warn := h.warning(at(d), 0, tiers); warn {
				t.Fatalf("at %v: %q", d, msg)
			}
		}
	})
	t.Run("never answered", func(t *testing.T) {
		h := newTrackerHealth(t0)
		h.record(bad(a), at(time.Second))
		if _, warn := h.warning(at(14*time.Second), 0, tiers); warn {
			t.Fatal("warned before trackerSilentAfter")
		}
		msg, warn := h.warning(at(15*time.Second), 0, tiers)
		want := "warning: no tracker has answered for 15s and there are no peers; still retrying (last errors: " + a + ": connection refused)"
		if !warn || msg != want {
			t.Fatalf("got %q (%v), want %q", msg, warn, want)
		}
		if _, warn := h.warning(at(30*time.Second), 0, tiers); warn {
			t.Fatal("repeated within trackerWarnEvery")
		}
		if _, warn := h.warning(at(75*time.Second), 0, tiers); !warn {
			t.Fatal("not repeated after trackerWarnEvery")
		}
	})
	t.Run("no reply at all", func(t *testing.T) {
		h := newTrackerHealth(t0)
		msg, _ := h.warning(at(20*time.Second), 0, tiers)
		if want := "warning: no tracker has answered for 20s and there are no peers; still retrying (none has replied yet)"; msg != want {
			t.Fatalf("got %q, want %q", msg, want)
		}
	})
	t.Run("peers, no tracker", func(t *testing.T) {
		h := newTrackerHealth(t0)
		if _, warn := h.warning(at(time.Hour), 3, tiers); warn {
			t.Fatal("warned while there are peers")
		}
	})
	t.Run("one of two fails", func(t *testing.T) {
		h := newTrackerHealth(t0)
		h.record(bad(a), at(time.Second))
		h.record(ok(b), at(time.Second))
		if _, warn := h.warning(at(time.Hour), 0, tiers); warn {
			t.Fatal("warned while a tracker answers")
		}
	})
	t.Run("all fail after answering", func(t *testing.T) {
		h := newTrackerHealth(t0)
		h.record(ok(a), at(time.Second))
		h.record(ok(b), at(time.Second))
		h.record(bad(a), at(10*time.Minute))
		h.record(bad(b), at(20*time.Minute))
		if _, warn := h.warning(at(20*time.Minute+14*time.Second), 0, tiers); warn {
			t.Fatal("warned before trackerSilentAfter since the last one failed")
		}
		msg, warn := h.warning(at(20*time.Minute+15*time.Second), 0, tiers)
		want := "warning: no tracker has answered (every one that did now fails) for 15s and there are no peers; still retrying (last errors: " +
			a + ": connection refused; " + b + ": connection refused)"
		if !warn || msg != want {
			t.Fatalf("got %q (%v), want %q", msg, warn, want)
		}
		h.record(ok(b), at(21*time.Minute))
		if _, warn := h.warning(at(time.Hour), 0, tiers); warn {
			t.Fatal("warned after a tracker answered again")
		}
	})
	t.Run("a failing scrape is not a failing tracker", func(t *testing.T) {
		h := newTrackerHealth(t0)
		h.record(ok(a), at(time.Second))
		h.record(tracker.Update{URL: a, Kind: tracker.UpdateScrape, Err: refused}, at(2*time.Second))
		if _, warn := h.warning(at(time.Hour), 0, tiers); warn {
			t.Fatal("a scrape error made the tracker unhealthy")
		}
	})
}
