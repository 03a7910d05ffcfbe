package main

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"flotilla/internal/testenv"
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
