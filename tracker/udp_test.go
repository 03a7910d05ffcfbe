package tracker

import (
	"errors"
	"strings"
	"testing"
	"time"

	"flotilla/tracker/internal/wire"
	"flotilla/tracker/trackertest"
)

func TestUDPAnnounceReusesConnectionID(t *testing.T) {
	tr := newUDPTracker(t, "127.0.0.1")
	c := newTestClient(t, nil)
	other := addTorrent(t, c, testHash, 2, 7002, []string{tr.URL})
	nextUpdate(t, other, 2*time.Second, "started (other)", okAnnounce(EventStarted))

	a := addTorrent(t, c, testHash, 1, 7001, []string{tr.URL})
	u := nextUpdate(t, a, 2*time.Second, "started", okAnnounce(EventStarted))
	if u.URL != tr.URL || u.InfoHash != testHash || u.Took <= 0 || u.Ticket.Kind != KindAnnounce {
		t.Fatalf("update %+v", u)
	}
	r := u.Response
	if r.Interval != 30*time.Minute || r.Leechers != 2 || r.Seeders != 0 {
		t.Fatalf("response %+v", r)
	}
	if len(r.Peers) != 1 || r.Peers[0].Addr.Port() != 7002 {
		t.Fatalf("peers %+v: want the other announcer", r.Peers)
	}
	q := tr.LastRequest()
	if q.Announce.PeerID != peerID(1) || q.Announce.Port != 7001 || q.Announce.Left != 1000 ||
		q.Announce.Key != 0xdeadbeef || q.Announce.NumWant != 50 || q.URLData != "/announce" {
		t.Fatalf("request %+v", q)
	}
	a.MorePeers()
	nextUpdate(t, a, 2*time.Second, "regular announce", okAnnounce(EventNone))
	if s := tr.Stats(); s.Connects != 2 || s.Announces != 3 {
		t.Fatalf("stats %+v: one connect per pipeline, the id is reused", s)
	}
}

func TestUDPRetransmission(t *testing.T) {
	tr := newUDPTracker(t, "127.0.0.1")
	tr.SetBehavior(func(b *UDPBehavior) { b.Drop = 2 }) // the connect and its first retransmission
	c := newTestClient(t, nil)
	a := addTorrent(t, c, testHash, 1, 7001, []string{tr.URL})
	u := nextUpdate(t, a, 3*time.Second, "started after retransmissions", okAnnounce(EventStarted))
	// 50 ms + 100 ms of waiting before the third transmission got through
	if u.Took < 150*time.Millisecond {
		t.Fatalf("took %v, want >= 150ms (two timeouts)", u.Took)
	}
	if s := tr.Stats(); s.Connects != 3 || s.Announces != 1 { // two dropped, one answered
		t.Fatalf("stats %+v", s)
	}
}

func TestUDPTimeoutAfterMaxRetries(t *testing.T) {
	tr := newUDPTracker(t, "127.0.0.1")
	tr.SetBehavior(func(b *UDPBehavior) { b.NeverAnswer = true })
	c := newTestClient(t, nil)
	start := time.Now()
	a := addTorrent(t, c, testHash, 1, 7001, []string{tr.URL})
	u := nextUpdate(t, a, 3*time.Second, "timeout", failedAnnounce(ErrTimeout))
	// 50 + 100 + 200 ms: n = 0, 1, 2
	if d := time.Since(start); d < 350*time.Millisecond {
		t.Fatalf("gave up after %v, want >= 350ms", d)
	}
	if u.Took < 350*time.Millisecond {
		t.Fatalf("took %v", u.Took)
	}
}

type UDPBehavior = trackertest.UDPBehavior

func TestUDPWrongTransactionIDIgnored(t *testing.T) {
	tr := newUDPTracker(t, "127.0.0.1")
	tr.SetBehavior(func(b *UDPBehavior) { b.WrongTxID = 1 })
	c := newTestClient(t, nil)
	a := addTorrent(t, c, testHash, 1, 7001, []string{tr.URL})
	nextUpdate(t, a, 3*time.Second, "started despite a wrong transaction id", okAnnounce(EventStarted))
	if s := c.UDPStats(); s.UnknownTxID != 1 {
		t.Fatalf("udp stats %+v: the wrong reply must be counted and ignored", s)
	}
}

func TestUDPConnectionIDExpiry(t *testing.T) {
	tr := newUDPTracker(t, "127.0.0.1")
	c := newTestClient(t, func(c *Config) { c.UDPConnIDTTL = 100 * time.Millisecond })
	a := addTorrent(t, c, testHash, 1, 7001, []string{tr.URL})
	nextUpdate(t, a, 2*time.Second, "started", okAnnounce(EventStarted))
	time.Sleep(150 * time.Millisecond) // let the connection id age past its TTL (the point of the test)
	a.MorePeers()
	nextUpdate(t, a, 2*time.Second, "announce", okAnnounce(EventNone))
	if s := tr.Stats(); s.Connects != 2 {
		t.Fatalf("connects %d, want 2: an expired id must not be reused", s.Connects)
	}
}

func TestUDPTrackerExpiresConnectionID(t *testing.T) {
	tr := newUDPTracker(t, "127.0.0.1")
	tr.SetBehavior(func(b *UDPBehavior) { b.ConnIDTTL = 300 * time.Millisecond })
	c := newTestClient(t, nil) // the client would reuse the id for a minute
	a := addTorrent(t, c, testHash, 1, 7001, []string{tr.URL})
	nextUpdate(t, a, 2*time.Second, "started", okAnnounce(EventStarted))
	time.Sleep(400 * time.Millisecond) // older than the tracker's 300 ms
	a.MorePeers()
	nextUpdate(t, a, 2*time.Second, "announce after reconnect", okAnnounce(EventNone))
	if s := tr.Stats(); s.Connects != 2 || s.Errors != 1 {
		t.Fatalf("stats %+v: an error reply to an old id must lead to a reconnect", s)
	}
}

func TestUDPErrorAction(t *testing.T) {
	tr := newUDPTracker(t, "127.0.0.1")
	tr.SetBehavior(func(b *UDPBehavior) { b.ErrorMsg = "torrent not registered" })
	c := newTestClient(t, nil)
	a := addTorrent(t, c, testHash, 1, 7001, []string{tr.URL})
	u := nextUpdate(t, a, 2*time.Second, "tracker error", failedAnnounce(ErrTrackerFailure))
	var te *TrackerError
	if !errors.As(u.Err, &te) || te.Reason != "torrent not registered" {
		t.Fatalf("err %v", u.Err)
	}
	if !strings.Contains(u.Err.Error(), tr.URL) {
		t.Fatalf("error %q does not name the tracker", u.Err)
	}
}

func TestUDPGarbageReply(t *testing.T) {
	tr := newUDPTracker(t, "127.0.0.1")
	tr.SetBehavior(func(b *UDPBehavior) { b.Garbage = 1 })
	c := newTestClient(t, nil)
	a := addTorrent(t, c, testHash, 1, 7001, []string{tr.URL})
	nextUpdate(t, a, 2*time.Second, "malformed", failedAnnounce(ErrMalformed))
	// the pipeline recovers: the next attempt (after back-off) works
	nextUpdate(t, a, 2*time.Second, "started after back-off", okAnnounce(EventStarted))
}

func TestUDPOversizedReply(t *testing.T) {
	tr := newUDPTracker(t, "127.0.0.1")
	tr.SetBehavior(func(b *UDPBehavior) { b.Oversized = 20000 })
	c := newTestClient(t, nil) // UDPMaxReply 16 KiB
	a := addTorrent(t, c, testHash, 1, 7001, []string{tr.URL})
	nextUpdate(t, a, 2*time.Second, "too large", failedAnnounce(ErrReplyTooLarge))
}

func TestUDPIPv6PeerList(t *testing.T) {
	tr := newUDPTracker(t, "::1")
	extra := []wire.Peer{{Addr: mustAddrPort("[2001:db8::1]:6881")}, {Addr: mustAddrPort("10.1.2.3:6882")}}
	tr.SetBehavior(func(b *UDPBehavior) { b.ExtraPeers = extra })
	c := newTestClient(t, nil)
	a := addTorrent(t, c, testHash, 1, 7001, []string{tr.URL})
	u := nextUpdate(t, a, 2*time.Second, "started over IPv6", okAnnounce(EventStarted))
	if len(u.Response.Peers) != 2 || u.Response.Peers[0].Addr != extra[0].Addr || u.Response.Peers[1].Addr != extra[1].Addr {
		t.Fatalf("peers %+v: 18-byte entries, IPv4 ones unmapped", u.Response.Peers)
	}
}
