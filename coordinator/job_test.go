package coordinator

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"flotilla/internal/testenv"
	"flotilla/tracker/trackertest"
)

func TestMain(m *testing.M) {
	// memberlist's Shutdown does not wait for a probe in flight: its
	// goroutine waits out the probe interval (1 s) for an ack that can no
	// longer come, then ends.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}

// TestJobDownloadsFromSeedJob: one coordinator seeds the torrent, another
// downloads it from the first as a direct peer; the downloader reports
// Completed with every byte, and the file is the payload.
func TestJobDownloadsFromSeedJob(t *testing.T) {
	tor := newTestTorrent(t, nil)
	seedDir := testPayloadDir(t)
	seeder := newTestCoordinator(t)
	seedJob := startTestJob(t, seeder, tor, seedDir, nil, func(c *JobConfig) { c.Seed = true })
	if ev, ok := nextEvent(t, seedJob, 10*time.Second).(Completed); !ok {
		t.Fatalf("seed job: %#v, want Completed", ev)
	}

	dir := t.TempDir()
	leecher := newTestCoordinator(t)
	peer := netip.MustParseAddrPort(seeder.Addr().String())
	job := startTestJob(t, leecher, tor, dir, []netip.AddrPort{peer})
	ev, ok := nextEvent(t, job, 30*time.Second).(Completed)
	if !ok {
		t.Fatalf("download: %#v, want Completed", ev)
	}
	if ev.Status.BytesDone != int64(len(testPayload)) {
		t.Errorf("completed with %d of %d bytes", ev.Status.BytesDone, len(testPayload))
	}
	if err := job.Close(); err != nil {
		t.Fatal(err)
	}
	checkDownload(t, dir, filepath.Join("payload.bin", "payload.bin"), testPayload)
}

// TestWarnWhenNoTrackerAnswers: a torrent whose only tracker is a closed
// loopback port, and no peers. The job reports TrackersSilent, naming the
// tracker and its error, once the trackers have been silent for
// TrackerSilentAfter, and repeats it no more often than TrackerWarnEvery
// while it keeps trying.
func TestWarnWhenNoTrackerAnswers(t *testing.T) {
	port := testenv.FreePort(t, "127.0.0.1") // free, so nothing answers there
	url := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) + "/announce"
	tor := newTestTorrent(t, [][]string{{url}})
	start := time.Now()
	j := startTestJob(t, newTestCoordinator(t), tor, t.TempDir(), nil, func(c *JobConfig) {
		c.TrackerSilentAfter, c.TrackerWarnEvery = 300*time.Millisecond, time.Second
	})
	var warnings []TrackersSilent
	for len(warnings) < 2 {
		switch ev := nextEvent(t, j, 20*time.Second).(type) {
		case TrackersSilent:
			warnings = append(warnings, ev)
		default:
			t.Fatalf("unexpected event %#v", ev)
		}
	}
	elapsed := time.Since(start)
	if max := int(elapsed/time.Second) + 1; len(warnings) > max {
		t.Errorf("%d warnings in %v; want at most %d (one per second)", len(warnings), elapsed, max)
	}
	for _, w := range warnings {
		t.Logf("%+v", w)
		if w.For < 300*time.Millisecond || len(w.Errors) != 1 || w.Errors[0].URL != url ||
			!strings.Contains(w.Errors[0].Err.Error(), "connection refused") {
			t.Errorf("warning does not name the tracker and its error: %+v", w)
		}
	}
}

// TestNoWarningWhileTrackersAnswer: a tracker that answers at once with no
// peers and a long interval (a seeder's usual situation: nobody wants the
// data yet). The job must not report that no tracker has answered,
// however long after the answer it runs. Before the fix it warned as soon
// as the last (scheduled) answer was TrackerSilentAfter old.
func TestNoWarningWhileTrackersAnswer(t *testing.T) {
	tr := trackertest.NewHTTP()
	defer tr.Close()
	tr.SetBehavior(func(b *trackertest.HTTPBehavior) { b.Interval = 30 * time.Minute })
	tor := newTestTorrent(t, [][]string{{tr.URL}})
	const silent = 200 * time.Millisecond
	j := startTestJob(t, newTestCoordinator(t), tor, t.TempDir(), nil, func(c *JobConfig) {
		c.TrackerSilentAfter, c.TrackerWarnEvery = silent, silent
	})
	testenv.WaitFor(t, 20*time.Second, "the tracker's first announce", func() bool { return tr.Announces() > 0 })
	// Many times TrackerSilentAfter and TrackerWarnEvery: the old code
	// warned within the first of them. A slow machine only makes the
	// check weaker, never fail wrongly.
	ctx, cancel := context.WithTimeout(context.Background(), 10*silent)
	defer cancel()
	for {
		select {
		case ev := <-j.Events():
			if w, ok := ev.(TrackersSilent); ok {
				t.Fatalf("warned although the tracker answered: %+v", w)
			}
		case <-ctx.Done():
			return
		}
	}
}
