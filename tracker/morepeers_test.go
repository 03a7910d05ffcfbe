package tracker

import (
	"testing"
	"time"
)

// TestMorePeersKeepsMinInterval: a caller that asks for more peers after
// every answer, several times over (as a job short of peers does), gets
// announces no closer together than the tracker's min interval. The gaps
// are measured where the tracker received them; a slow machine only
// widens them.
func TestMorePeersKeepsMinInterval(t *testing.T) {
	const minInterval = time.Second // trackers give whole seconds
	tr := newHTTPTracker(t)
	tr.SetBehavior(func(b *HTTPBehavior) { b.Interval = time.Hour; b.MinInterval = minInterval })
	c := newTestClient(t, nil)
	a := addTorrent(t, c, testHash, 1, 7001, []string{tr.URL})
	a.MorePeers() // while "started" is in flight: one more after it
	nextUpdate(t, a, 5*time.Second, "started", okAnnounce(EventStarted))
	for i := range 2 {
		a.MorePeers()
		a.MorePeers()
		nextUpdate(t, a, 5*time.Second, "sooner announce "+string(rune('1'+i)), okAnnounce(EventNone))
	}
	times := tr.AnnounceTimes()
	if len(times) != 3 {
		t.Fatalf("%d announces, want 3 (started and 2 asked for)", len(times))
	}
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < minInterval {
			t.Errorf("announce %d came %v after the previous one, under the min interval %v", i, gap, minInterval)
		}
	}
}

// TestMorePeersKeepsBackOff: asking a failing tracker for more peers does
// not cut its back-off short. Before the fix a tracker that had never
// answered was asked again at once.
func TestMorePeersKeepsBackOff(t *testing.T) {
	const backoff = 400 * time.Millisecond // with jitter: at least 300 ms
	tr := newHTTPTracker(t)
	tr.SetBehavior(func(b *HTTPBehavior) { b.Failure = "not now" })
	c := newTestClient(t, func(c *Config) { c.BackoffMin, c.BackoffMax = backoff, backoff })
	a := addTorrent(t, c, testHash, 1, 7001, []string{tr.URL})
	for i := range 3 {
		nextUpdate(t, a, 5*time.Second, "failed announce "+string(rune('1'+i)), func(u Update) bool {
			return u.Kind == UpdateAnnounce && u.Err != nil
		})
		a.MorePeers()
	}
	times := tr.AnnounceTimes()
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < backoff*3/4 {
			t.Errorf("retry %d came %v after the failure, within the back-off (at least %v)", i, gap, backoff*3/4)
		}
	}
}
