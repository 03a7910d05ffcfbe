package coordinator

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"flotilla/swarm"
	"flotilla/tracker"
	"flotilla/tracker/trackertest"
	"flotilla/watchdog"
)

// TestHungTrackerIsReportedOverdue: a tracker that never answers. Its
// announce intent passes the watchdog's deadline; the alert reaches the
// job, which reports Overdue naming the tracker, once, and marks it
// slow: with no peers, the TrackersSilent warning names it with
// ErrTrackerSlow. Before, the alert was only a debug line.
func TestHungTrackerIsReportedOverdue(t *testing.T) {
	const deadline = 300 * time.Millisecond
	tr := trackertest.NewHTTP()
	defer tr.Close()
	tr.SetBehavior(func(b *trackertest.HTTPBehavior) { b.Hang = true })
	tor := newTestTorrent(t, [][]string{{tr.URL}})
	c := newTestCoordinator(t, func(c *Config) {
		tc := tracker.DefaultConfig()
		tc.RequestDeadline, tc.HTTPTimeout = deadline, time.Minute
		c.Trackers = &tc
	})
	j := startTestJob(t, c, tor, t.TempDir(), nil, func(c *JobConfig) {
		c.TrackerSilentAfter, c.TrackerWarnEvery = 200*time.Millisecond, 200*time.Millisecond
	})
	var overdue []Overdue
	var silent *TrackersSilent
	for len(overdue) == 0 || silent == nil {
		switch ev := nextEvent(t, j, 20*time.Second).(type) {
		case Overdue:
			overdue = append(overdue, ev)
		case TrackersSilent:
			if len(ev.Errors) > 0 { // before the alert, none has replied yet
				silent = &ev
			}
		default:
			t.Fatalf("unexpected event %#v", ev)
		}
	}
	o := overdue[0]
	if len(overdue) != 1 || o.Kind != tracker.KindAnnounce || o.Tracker != tr.URL || o.Worker != "" ||
		o.Waited < deadline || o.Late < 0 || o.Waited < o.Late {
		t.Errorf("overdue events %+v, want one for the announce to %s", overdue, tr.URL)
	}
	if len(silent.Errors) != 1 || silent.Errors[0].URL != tr.URL || !errors.Is(silent.Errors[0].Err, ErrTrackerSlow) {
		t.Errorf("warning %+v does not name the slow tracker", *silent)
	}
}

// TestOverdueRouting: alerts go to the job whose torrent owns the packet.
// A tracker is reported once until it answers; every missed lease is
// reported, the local swarm's as not a node; packets of another torrent
// or of unknown kinds are not the job's business.
func TestOverdueRouting(t *testing.T) {
	tor := newTestTorrent(t, nil)
	now := time.Now()
	j := &Job{c: &Coordinator{log: slog.New(slog.DiscardHandler)}, cfg: JobConfig{Torrent: tor},
		health: newTrackerHealth(now, time.Second, time.Second)}
	owner := func(who string) string { return fmt.Sprintf("%x %s", tor.InfoHash, who) }
	alert := func(kind, owner string) watchdog.Alert {
		return watchdog.Alert{Packet: watchdog.Packet{Kind: kind, Owner: owner, Issued: now.Add(-3 * time.Second),
			Deadline: now.Add(-time.Second)}, Late: time.Second}
	}
	const url = "udp://tracker.example:6969/announce"
	j.overdue(alert(tracker.KindAnnounce, owner(url)), now)
	j.overdue(alert(tracker.KindConnect, owner(url)), now) // still slow: not again
	j.overdue(alert(swarm.LeaseKind, owner("local")), now)
	j.overdue(alert(swarm.LeaseKind, owner("local")), now)
	j.overdue(alert("other", owner("x")), now)
	j.health.record(tracker.Update{URL: url, Kind: tracker.UpdateAnnounce}, now) // it answers
	j.overdue(alert(tracker.KindSchedule, owner(url)), now)
	want := []Event{
		Overdue{Kind: tracker.KindAnnounce, Tracker: url, Waited: 3 * time.Second, Late: time.Second},
		Overdue{Kind: swarm.LeaseKind, Worker: "local", Waited: 3 * time.Second, Late: time.Second},
		Overdue{Kind: swarm.LeaseKind, Worker: "local", Waited: 3 * time.Second, Late: time.Second},
		Overdue{Kind: tracker.KindSchedule, Tracker: url, Waited: 3 * time.Second, Late: time.Second},
	}
	if fmt.Sprint(j.queue) != fmt.Sprint(want) {
		t.Errorf("events\n%+v\nwant\n%+v", j.queue, want)
	}
	if _, _, ok := packetTorrent("local"); ok {
		t.Error("a bare worker name parsed as a torrent's packet")
	}
	if ih, who, ok := packetTorrent(owner(url)); !ok || ih != tor.InfoHash || who != url {
		t.Errorf("packetTorrent(%q) = %x %q %v", owner(url), ih, who, ok)
	}
}
