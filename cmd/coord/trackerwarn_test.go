package main

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"flotilla/coordinator"
	"flotilla/internal/testenv"
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

// TestTrackerWarningText: the warning's exact sentences, for a tracker
// that never answered, for none that replied at all, and for trackers that
// answered and now all fail.
func TestTrackerWarningText(t *testing.T) {
	const a, b = "http://a.example/announce", "udp://b.example:6969/announce"
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	for _, c := range []struct {
		w    coordinator.TrackersSilent
		want string
	}{
		{coordinator.TrackersSilent{For: 15 * time.Second, Errors: []coordinator.TrackerError{{URL: a, Err: refused}}},
			"warning: no tracker has answered for 15s and there are no peers; still retrying (last errors: " + a + ": connection refused)"},
		{coordinator.TrackersSilent{For: 20*time.Second + 300*time.Millisecond},
			"warning: no tracker has answered for 20s and there are no peers; still retrying (none has replied yet)"},
		{coordinator.TrackersSilent{For: 15 * time.Second, Lapsed: true, Errors: []coordinator.TrackerError{{URL: a, Err: refused}, {URL: b, Err: refused}}},
			"warning: no tracker has answered (every one that did now fails) for 15s and there are no peers; still retrying (last errors: " +
				a + ": connection refused; " + b + ": connection refused)"},
		{coordinator.TrackersSilent{For: time.Minute, Errors: []coordinator.TrackerError{{URL: a, Err: errors.New(strings.Repeat("x", 150))}}},
			"warning: no tracker has answered for 1m0s and there are no peers; still retrying (last errors: " + a + ": " + strings.Repeat("x", 99) + "…)"},
	} {
		if got := trackerWarning(c.w); got != c.want {
			t.Errorf("got  %q\nwant %q", got, c.want)
		}
	}
}
