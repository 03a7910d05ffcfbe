package tracker

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"flotilla/internal/testenv"
	"flotilla/tracker/internal/wire"
	"flotilla/watchdog"
)

func status(t *testing.T, a *Announcer) []TrackerStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := a.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestTierFallbackAndPromotion(t *testing.T) {
	dead := newUDPTracker(t, "127.0.0.1")
	dead.SetBehavior(func(b *UDPBehavior) { b.NeverAnswer = true })
	failing := newHTTPTracker(t)
	failing.SetBehavior(func(b *HTTPBehavior) { b.Failure = "go away" })
	good := newHTTPTracker(t)
	spare := newHTTPTracker(t)
	// the dead tracker would be retried for 50ms·(2^9-1) ≈ 25 s on its own;
	// with alternatives it is given up after FailoverRetries
	c := newTestClient(t, func(c *Config) { c.UDPMaxRetries = 8; c.FailoverRetries = 1 })
	// tier 0: only the dead tracker; tier 1: a failing and a good one (shuffled); tier 2: never needed
	a := addTorrent(t, c, testHash, 1, 7001, []string{dead.URL}, []string{failing.URL, good.URL}, []string{spare.URL})
	u := nextUpdate(t, a, 3*time.Second, "started from the good tracker", okAnnounce(EventStarted))
	if u.URL != good.URL || u.Tier != 1 {
		t.Fatalf("answer from %s tier %d", u.URL, u.Tier)
	}
	if dead.Stats().Connects == 0 {
		t.Fatal("tier 0 was not tried first")
	}
	// the update reaches us from the pipeline and the report reaches the
	// Announcer's loop on its own channel: the promotion may follow the update
	var st []TrackerStatus
	testenv.WaitFor(t, 2*time.Second, "the good tracker promoted to the front of tier 1 (order: dead, good, failing, spare)", func() bool {
		st = status(t, a)
		return st[0].URL == dead.URL && st[1].URL == good.URL && st[2].URL == failing.URL && st[3].URL == spare.URL
	})
	if !st[1].Active || st[0].Active || st[2].Active || st[3].Active {
		t.Fatalf("active flags %+v", st)
	}
	if spare.Announces() != 0 {
		t.Fatal("tier 2 must not be used while tier 1 works")
	}
	// the good tracker now fails: the next one in order takes over (wrapping to tier 0 would come later)
	good.SetBehavior(func(b *HTTPBehavior) { b.Failure = "down" })
	a.MorePeers()
	testenv.WaitFor(t, 5*time.Second, "the spare tier to be used", func() bool { return spare.Announces() > 0 })
}

func TestAllTiersAndStoppedOnClose(t *testing.T) {
	h := newHTTPTracker(t)
	u := newUDPTracker(t, "127.0.0.1")
	never := newHTTPTracker(t) // in tier 0 after h: never started
	c := newTestClient(t, func(c *Config) { c.AllTiers = true })
	var params atomic.Pointer[AnnounceParams] // live counters, as a download gives them
	params.Store(&AnnounceParams{PeerID: peerID(1), Port: 7001, Left: 10})
	a, err := c.AddTorrent(TorrentConfig{InfoHash: testHash, Tiers: [][]string{{h.URL}, {u.URL}},
		ParamsFunc: func() AnnounceParams { return *params.Load() }})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		nextUpdate(t, a, 2*time.Second, "started on both tiers", okAnnounce(EventStarted))
	}
	params.Store(&AnnounceParams{PeerID: peerID(1), Port: 7001, Uploaded: 5, Downloaded: 10, Left: 0})
	a.Completed()
	a.Completed() // only once
	for range 2 {
		nextUpdate(t, a, 2*time.Second, "completed on both tiers", okAnnounce(EventCompleted))
	}
	a.Close()
	a.Close() // idempotent
	if ev := u.Events(); len(ev) != 3 || ev[0] != wire.EventStarted || ev[1] != wire.EventCompleted || ev[2] != wire.EventStopped {
		t.Fatalf("udp events %v", ev)
	}
	if q := u.LastRequest().Announce; q.Uploaded != 5 || q.Downloaded != 10 || q.Left != 0 || q.NumWant != 0 {
		t.Fatalf("stopped request %+v", q)
	}
	qs := h.Queries()
	if len(qs) != 3 || !strings.Contains(qs[1], "event=completed") || !strings.Contains(qs[2], "event=stopped") {
		t.Fatalf("http queries %q", qs)
	}
	if never.Announces() != 0 {
		t.Fatal("a tracker never started must not get stopped")
	}
}

func TestCloseWithUnreachableTrackerIsBounded(t *testing.T) {
	u := newUDPTracker(t, "127.0.0.1")
	c := newTestClient(t, func(c *Config) { c.UDPMaxRetries = 8 })
	a := addTorrent(t, c, testHash, 1, 7001, []string{u.URL})
	nextUpdate(t, a, 2*time.Second, "started", okAnnounce(EventStarted))
	u.SetBehavior(func(b *UDPBehavior) { b.NeverAnswer = true })
	start := time.Now()
	a.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v with StopTimeout 500ms", d)
	}
}

// A tracker that never answers is flagged by the watchdog while the other
// pipelines keep their schedule.
func TestNeverAnsweringTrackerIsFlagged(t *testing.T) {
	dead := newUDPTracker(t, "127.0.0.1")
	dead.SetBehavior(func(b *UDPBehavior) { b.NeverAnswer = true })
	live := newUDPTracker(t, "127.0.0.1")
	live.SetBehavior(func(b *UDPBehavior) { b.Interval = time.Second })
	liveHTTP := newHTTPTracker(t)
	liveHTTP.SetBehavior(func(b *HTTPBehavior) { b.Interval = time.Second })
	c := newTestClient(t, func(c *Config) {
		c.AllTiers = true
		c.UDPMaxRetries = 8 // keep retransmitting to the dead one for the whole test
		c.RequestDeadline = 300 * time.Millisecond
	})
	stuck := addTorrent(t, c, testHash, 1, 7001, []string{dead.URL}, []string{live.URL})
	other := addTorrent(t, c, [20]byte{2}, 1, 7001, []string{liveHTTP.URL})

	var alert watchdog.Alert
	select {
	case alert = <-c.wd.Alerts():
	case <-time.After(3 * time.Second):
		t.Fatal("no watchdog alert for the dead tracker")
	}
	if !strings.Contains(alert.Packet.Owner, dead.URL) || (alert.Packet.Kind != KindConnect && alert.Packet.Kind != KindAnnounce) {
		t.Fatalf("alert %+v", alert.Packet)
	}
	// meanwhile the live trackers keep their one-second schedule
	var liveN, httpN atomic.Int64
	stop := make(chan struct{})
	defer close(stop)
	count := func(a *Announcer, n *atomic.Int64) {
		for {
			select {
			case u := <-a.Updates():
				if u.Err == nil && u.Event == EventNone {
					n.Add(1)
				}
			case <-stop:
				return
			}
		}
	}
	go count(stuck, &liveN)
	go count(other, &httpN)
	testenv.WaitFor(t, 5*time.Second, "two regular announces on each live tracker", func() bool {
		return liveN.Load() >= 2 && httpN.Load() >= 2
	})
	if s := dead.Stats(); s.Connects < 4 {
		t.Fatalf("dead tracker saw %d connects: retransmission stopped", s.Connects)
	}
	pend := c.wd.Pending(func(p watchdog.Packet) bool { return strings.Contains(p.Owner, dead.URL) })
	if len(pend) == 0 {
		t.Fatal("the dead tracker's intents should be pending in the ledger")
	}
}

func TestIntervalAndMinInterval(t *testing.T) {
	tr := newHTTPTracker(t)
	tr.SetBehavior(func(b *HTTPBehavior) { b.Interval = 2 * time.Second; b.MinInterval = time.Second })
	c := newTestClient(t, nil)
	a := addTorrent(t, c, testHash, 1, 7001, []string{tr.URL})
	u0 := nextUpdate(t, a, 2*time.Second, "started", okAnnounce(EventStarted))
	t0 := u0.Ticket.Issued
	st := status(t, a)[0]
	if st.Interval != 2*time.Second || st.MinInterval != time.Second || !st.NextAnnounce.After(time.Now().Add(time.Second)) {
		t.Fatalf("status %+v", st)
	}
	// the schedule is visible in the watchdog: one pending "next announce due" entry
	testenv.WaitFor(t, time.Second, "the schedule entry in the ledger", func() bool {
		ps := c.wd.Pending(func(p watchdog.Packet) bool { return p.Kind == KindSchedule && strings.HasSuffix(p.Owner, tr.URL) })
		return len(ps) == 1 && ps[0].Deadline.Equal(st.NextAnnounce.Add(time.Second))
	})
	a.MorePeers() // must wait for min interval (1 s), not the full interval
	a.MorePeers()
	u1 := nextUpdate(t, a, 3*time.Second, "sooner announce", okAnnounce(EventNone))
	if d := u1.Ticket.Issued.Sub(t0); d < time.Second || d > 1800*time.Millisecond {
		t.Fatalf("sooner announce after %v, want ~1s (min interval)", d)
	}
	u2 := nextUpdate(t, a, 4*time.Second, "regular announce", okAnnounce(EventNone))
	if d := u2.Ticket.Issued.Sub(u1.Ticket.Issued); d < 2*time.Second || d > 2800*time.Millisecond {
		t.Fatalf("regular announce after %v, want ~2s (interval)", d)
	}
	if n := tr.Announces(); n != 3 {
		t.Fatalf("%d announces", n)
	}
}

func TestPeerWatch(t *testing.T) {
	tr := newUDPTracker(t, "127.0.0.1")
	c := newTestClient(t, nil)
	a := addTorrent(t, c, testHash, 1, 7001, []string{tr.URL})
	nextUpdate(t, a, 2*time.Second, "started", okAnnounce(EventStarted))
	ctx := context.Background()
	w, err := a.WatchPeers(ctx, tr.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := a.WatchPeers(ctx, "udp://elsewhere:1/announce"); err == nil {
		t.Fatal("watching an unknown tracker must fail")
	}
	b := addTorrent(t, c, testHash, 2, 7002, []string{tr.URL})
	nextUpdate(t, b, 2*time.Second, "b started", okAnnounce(EventStarted))
	a.MorePeers()
	select {
	case <-w.C:
	case <-time.After(2 * time.Second):
		t.Fatal("no change notification")
	}
	ps, err := w.Peers(ctx)
	if err != nil || len(ps) != 1 || ps[0].Addr.Port() != 7002 {
		t.Fatalf("peers %+v %v", ps, err)
	}
}

func TestUpdatesDropOldest(t *testing.T) {
	tr := newHTTPTracker(t)
	c := newTestClient(t, func(c *Config) { c.UpdateBuffer = 1 })
	a := addTorrent(t, c, testHash, 1, 7001, []string{tr.URL})
	testenv.WaitFor(t, 2*time.Second, "started", func() bool { return tr.Announces() == 1 })
	for i := 2; i <= 4; i++ {
		a.MorePeers()
		testenv.WaitFor(t, 2*time.Second, "announce", func() bool { return tr.Announces() == int64(i) })
	}
	testenv.WaitFor(t, 2*time.Second, "drops counted", func() bool { return a.DroppedUpdates() == 3 })
	if u := <-a.Updates(); u.Event != EventNone || u.Err != nil {
		t.Fatalf("kept %+v; the newest must survive", u)
	}
}

func TestProbe(t *testing.T) {
	h := newHTTPTracker(t)
	u := newUDPTracker(t, "127.0.0.1")
	dead := newUDPTracker(t, "127.0.0.1")
	dead.SetBehavior(func(b *UDPBehavior) { b.NeverAnswer = true })
	failing := newHTTPTracker(t)
	failing.SetBehavior(func(b *HTTPBehavior) { b.Failure = "nope" })
	c := newTestClient(t, nil)
	// someone else is in the swarm on both live trackers
	other := addTorrent(t, c, testHash, 2, 7002, []string{h.URL}, []string{u.URL})
	nextUpdate(t, other, 2*time.Second, "other started", okAnnounce(EventStarted))
	tiers := [][]string{{h.URL, "wss://tracker.example/announce"}, {u.URL, dead.URL}, {failing.URL}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res := c.ProbeTiers(ctx, [20]byte{2}, tiers, AnnounceParams{PeerID: peerID(1), Port: 7001, Left: 1})
	if len(res) != 5 {
		t.Fatalf("%d results", len(res))
	}
	byURL := map[string]ProbeResult{}
	for _, r := range res {
		byURL[r.URL] = r
	}
	if r := byURL[h.URL]; r.Err != nil || r.Protocol != "http" || r.Response == nil || r.Took <= 0 ||
		r.Scrape == nil || r.Scrape.Leechers != 1 || r.StopErr != nil {
		t.Fatalf("http %+v", r)
	}
	if r := byURL[u.URL]; r.Err != nil || r.Protocol != "udp" || r.Response.Leechers != 1 || r.Scrape == nil {
		t.Fatalf("udp %+v", r)
	}
	if r := byURL[dead.URL]; !errorsIs(r.Err, ErrTimeout) {
		t.Fatalf("dead %+v", r)
	}
	if r := byURL[failing.URL]; !errorsIs(r.Err, ErrTrackerFailure) {
		t.Fatalf("failing %+v", r)
	}
	if r := byURL["wss://tracker.example/announce"]; !errorsIs(r.Err, ErrUnsupportedURL) || r.Tier != 0 {
		t.Fatalf("wss %+v", r)
	}
	if ev := u.Events(); ev[len(ev)-1] != wire.EventStopped {
		t.Fatalf("udp events %v: the probe must end with stopped", ev)
	}
	if s := h.Queries(); !strings.Contains(s[len(s)-1], "event=stopped") {
		t.Fatalf("http queries %q", s)
	}
}

// BEP 12: after falling over to a later tier, the earlier tier is tried
// again before the next regular announce.
func TestBackToFirstTier(t *testing.T) {
	first := newHTTPTracker(t)
	first.SetBehavior(func(b *HTTPBehavior) { b.Failure = "briefly down" })
	second := newHTTPTracker(t)
	second.SetBehavior(func(b *HTTPBehavior) { b.Interval = time.Second })
	c := newTestClient(t, nil)
	a := addTorrent(t, c, testHash, 1, 7001, []string{first.URL}, []string{second.URL})
	if u := nextUpdate(t, a, 2*time.Second, "started on the second tier", okAnnounce(EventStarted)); u.URL != second.URL {
		t.Fatalf("started on %s", u.URL)
	}
	first.SetBehavior(func(b *HTTPBehavior) { b.Failure = ""; b.Interval = time.Second })
	u := nextUpdate(t, a, 3*time.Second, "started on the first tier again", okAnnounce(EventStarted))
	if u.URL != first.URL {
		t.Fatalf("started on %s", u.URL)
	}
	st := status(t, a)
	if !st[0].Active || st[1].Active || !st[1].Started {
		t.Fatalf("status %+v: the first tier is in charge, the second stays started (for its stopped)", st)
	}
	n := second.Announces()
	nextUpdate(t, a, 3*time.Second, "regular announce on the first tier", func(u Update) bool {
		return u.Err == nil && u.Event == EventNone && u.URL == first.URL
	})
	if second.Announces() != n {
		t.Fatal("the second tier must rest while the first works")
	}
	a.Close()
	if q := second.Queries(); !strings.Contains(q[len(q)-1], "event=stopped") {
		t.Fatalf("second tier queries %q: it got a started, so it gets a stopped", q)
	}
}
