package coordinator

import (
	"context"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"flotilla/internal/testenv"
	"flotilla/metainfo"
	"flotilla/tracker"
	"flotilla/tracker/trackertest"
)

// trackerMinInterval is the min interval the scripted tracker gives;
// trackers give whole seconds.
const trackerMinInterval = time.Second

// fastTrackers lets a tracker's own min interval rule (no 30 s floor).
func fastTrackers(c *Config) {
	tc := tracker.DefaultConfig()
	tc.MinInterval = 0
	c.Trackers = &tc
}

// newPeerTracker starts a scripted tracker that asks for announces every
// hour, and no more often than trackerMinInterval when asked for peers.
func newPeerTracker(t *testing.T) *trackertest.HTTPTracker {
	t.Helper()
	tr := trackertest.NewHTTP()
	t.Cleanup(tr.Close)
	tr.SetBehavior(func(b *trackertest.HTTPBehavior) { b.Interval, b.MinInterval = time.Hour, trackerMinInterval })
	return tr
}

// announceTimes returns when tr received the announces made from port.
func announceTimes(tr *trackertest.HTTPTracker, port int) []time.Time {
	qs, ts := tr.Queries(), tr.AnnounceTimes()
	var out []time.Time
	for i, q := range qs {
		if strings.Contains("&"+q+"&", "&port="+strconv.Itoa(port)+"&") && i < len(ts) {
			out = append(out, ts[i])
		}
	}
	return out
}

// startSeeder seeds tor from a directory of testPayload, on a coordinator
// that announces to no tracker itself, and returns its address.
func startSeeder(t *testing.T, tor *metainfo.Torrent) netip.AddrPort {
	t.Helper()
	dir := testPayloadDir(t)
	c := newTestCoordinator(t)
	j := startTestJob(t, c, tor, dir, nil, func(c *JobConfig) { c.Seed, c.Tiers = true, nil })
	if ev, ok := nextEvent(t, j, 10*time.Second).(Completed); !ok {
		t.Fatalf("seed job: %#v, want Completed", ev)
	}
	return netip.MustParseAddrPort(c.Addr().String())
}

// TestJobShortOfPeersAsksTrackers: a job whose tracker knows no peer at
// first (and asks for announces only hourly) asks it for more peers
// while it has none, no more often than the tracker's min interval. A
// seeder that the tracker learns of later reaches the job through the
// tracker's peer list, and the job completes. Before, the job announced
// once and waited an hour.
func TestJobShortOfPeersAsksTrackers(t *testing.T) {
	tr := newPeerTracker(t)
	tor := newTestTorrent(t, [][]string{{tr.URL}})
	c := newTestCoordinator(t, fastTrackers)
	port := c.Addr().Port
	j := startTestJob(t, c, tor, t.TempDir(), nil)
	testenv.WaitFor(t, 20*time.Second, "the job to ask for more peers twice", func() bool {
		return len(announceTimes(tr, port)) >= 3
	})

	// A seeder appears at the tracker (announced by a client of its own,
	// so that it does not learn of the job and dial it itself).
	seeder := startSeeder(t, tor)
	tcfg := tracker.DefaultConfig()
	tcfg.UDPListen4, tcfg.UDPListen6 = "127.0.0.1:0", "[::1]:0"
	tc, err := tracker.New(tcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	ann, err := tc.AddTorrent(tracker.TorrentConfig{InfoHash: tor.InfoHash, Tiers: [][]string{{tr.URL}},
		Params: tracker.AnnounceParams{PeerID: tracker.NewPeerID(), Port: seeder.Port(), NumWant: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer ann.Close()

	ev, ok := nextEvent(t, j, 30*time.Second).(Completed)
	if !ok {
		t.Fatalf("download: %#v, want Completed", ev)
	}
	if ev.Status.BytesDone != int64(len(testPayload)) {
		t.Errorf("completed with %d of %d bytes", ev.Status.BytesDone, len(testPayload))
	}
	times := announceTimes(tr, port)
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < trackerMinInterval {
			t.Errorf("announce %d came %v after the previous one, under the min interval %v", i, gap, trackerMinInterval)
		}
	}

	// The job's tracker report: the announces' figures, their latency as
	// the watchdog measured it, and the tracker's peer list with the seeder.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reps, err := j.Trackers(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 1 {
		t.Fatalf("%d tracker reports, want 1", len(reps))
	}
	r := reps[0]
	if r.URL != tr.URL || r.LastAnnounce.IsZero() || r.Interval != time.Hour || r.MinInterval != trackerMinInterval {
		t.Errorf("report %+v does not show the tracker's announces", r.TrackerStatus)
	}
	if r.Latency.Answers < 3 || r.Latency.Max <= 0 || r.Latency.P50 > r.Latency.Max || r.Overdue != 0 {
		t.Errorf("latency %+v, overdue %d: want >= 3 answers measured, none overdue", r.Latency, r.Overdue)
	}
	if r.Peers < 1 || !slices.Contains(r.PeerList, seeder) {
		t.Errorf("peer list %v (of %d) does not hold the seeder %v", r.PeerList, r.Peers, seeder)
	}
}

// TestJobWithEnoughPeersDoesNotAsk: two downloaders of a torrent nobody
// seeds find each other through the tracker and stay connected (each
// has the one peer its threshold asks for). While they are, the tracker
// hears at most the asks made before they connected — not one every min
// interval, as it does from a job short of peers.
func TestJobWithEnoughPeersDoesNotAsk(t *testing.T) {
	tr := newPeerTracker(t)
	tor := newTestTorrent(t, [][]string{{tr.URL}})
	onePeer := func(c *JobConfig) { c.MaxPeers, c.MorePeersBelow = 4, 0.25 } // ask below 1 peer
	c1, c2 := newTestCoordinator(t, fastTrackers), newTestCoordinator(t, fastTrackers)
	j1 := startTestJob(t, c1, tor, t.TempDir(), nil, onePeer)
	j2 := startTestJob(t, c2, tor, t.TempDir(), nil, onePeer)
	waitPeers := func(j *Job) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case ev := <-j.Events():
				if p, ok := ev.(Progress); ok && p.Status.Peers >= 1 {
					return
				}
			case <-deadline:
				t.Fatal("the downloaders did not connect")
			}
		}
	}
	waitPeers(j1)
	waitPeers(j2)
	before := len(tr.AnnounceTimes())
	// Several min intervals, connected all along (a job's loop checks the
	// threshold every StatusInterval; Progress comes only on a change).
	window := time.After(3 * trackerMinInterval)
	for done := false; !done; {
		select {
		case ev := <-j1.Events():
			if p, ok := ev.(Progress); ok && p.Status.Peers < 1 {
				t.Fatal("the downloaders lost each other")
			}
		case ev := <-j2.Events():
			if p, ok := ev.(Progress); ok && p.Status.Peers < 1 {
				t.Fatal("the downloaders lost each other")
			}
		case <-window:
			done = true
		}
	}
	// Each job may have asked once before the other connected.
	if after := len(tr.AnnounceTimes()); after > before+2 {
		t.Errorf("%d announces while both jobs had their peer, want at most 2 (asks made before they connected)", after-before)
	}
}

// TestPeerDemand: the threshold, one ask per tracker answer, none before
// the first answer and none once complete.
func TestPeerDemand(t *testing.T) {
	d := newPeerDemand(80, 0.25) // below 20
	if d.short(0, true) {
		t.Fatal("asked before the first announce was answered")
	}
	d.answered()
	if d.short(20, true) || d.short(50, true) {
		t.Fatal("asked with enough peers")
	}
	if d.short(3, false) {
		t.Fatal("asked once complete")
	}
	if !d.short(19, true) {
		t.Fatal("did not ask with 19 of 80 peers")
	}
	if d.short(0, true) {
		t.Fatal("asked again before a tracker answered")
	}
	d.answered()
	if !d.short(0, true) {
		t.Fatal("did not ask again after the answer")
	}
	never := newPeerDemand(80, 0)
	never.answered()
	if never.short(0, true) {
		t.Fatal("MorePeersBelow 0 asked")
	}
}
