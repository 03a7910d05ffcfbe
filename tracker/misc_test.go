package tracker

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"flotilla/metainfo"
)

func TestUDPHostNameResolvedPerConnect(t *testing.T) {
	tr := newUDPTracker(t, "127.0.0.1")
	res := &countingResolver{}
	c := newTestClient(t, func(c *Config) { c.Resolver = res; c.UDPConnIDTTL = 50 * time.Millisecond })
	url := strings.Replace(tr.URL, "127.0.0.1", "tracker.test", 1)
	a := addTorrent(t, c, testHash, 1, 7001, []string{url})
	nextUpdate(t, a, 2*time.Second, "started via the resolved name", okAnnounce(EventStarted))
	time.Sleep(60 * time.Millisecond) // past the connection id TTL: the next announce reconnects
	a.MorePeers()
	nextUpdate(t, a, 2*time.Second, "announce", okAnnounce(EventNone))
	if n := res.n.Load(); n != 2 {
		t.Fatalf("%d lookups, want one per connect (2)", n)
	}
	bad := addTorrent(t, c, testHash, 2, 7002, []string{"udp://nowhere.test:6969/announce"})
	u := nextUpdate(t, bad, 2*time.Second, "lookup failure", failedAnnounce(ErrResolve))
	if !strings.Contains(u.Err.Error(), "nowhere.test") {
		t.Fatalf("err %v", u.Err)
	}
}

type countingResolver struct{ n atomicInt }

func (r *countingResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if host != "tracker.test" {
		return nil, errors.New("no such host")
	}
	r.n.Add(1)
	return []netip.Addr{netip.MustParseAddr("::ffff:127.0.0.1")}, nil
}

func TestBackoffGrowsWithJitter(t *testing.T) {
	c := newTestClient(t, func(c *Config) { c.BackoffMin = time.Second; c.BackoffMax = 10 * time.Second })
	a := newAnnouncer(c.Client, TorrentConfig{Tiers: [][]string{{"http://x.test/announce"}}}, false)
	p := a.pipes[0]
	now := time.Unix(0, 0)
	seen := map[time.Duration]bool{}
	for f, base := range []time.Duration{0, 1, 2, 4, 8, 10, 10} {
		if f == 0 {
			continue
		}
		p.failures = int32(f)
		for range 20 {
			d := p.lastFailureRetry(now).Sub(now)
			lo, hi := base*time.Second*3/4, base*time.Second*5/4
			if d < lo || d > hi {
				t.Fatalf("failures %d: back-off %v not in [%v, %v]", f, d, lo, hi)
			}
			seen[d] = true
		}
	}
	if len(seen) < 50 {
		t.Fatalf("only %d distinct back-offs: no jitter?", len(seen))
	}
}

func TestTierShuffle(t *testing.T) {
	x, y := newHTTPTracker(t), newHTTPTracker(t)
	c := newTestClient(t, nil)
	first := map[string]int{}
	for i := range 16 {
		a := addTorrent(t, c, testHash, byte(i), 7001, []string{x.URL, y.URL})
		u := nextUpdate(t, a, 2*time.Second, "started", okAnnounce(EventStarted))
		first[u.URL]++
		a.Close()
	}
	if first[x.URL] == 0 || first[y.URL] == 0 {
		t.Fatalf("first tracker picks %v: a tier must be shuffled", first)
	}
}

func TestProbeTorrent(t *testing.T) {
	h := newHTTPTracker(t)
	c := newTestClient(t, nil)
	tor := &metainfo.Torrent{InfoHash: testHash, Announce: h.URL}
	res := c.Probe(context.Background(), tor, AnnounceParams{PeerID: peerID(1), Port: 7001})
	if len(res) != 1 || res[0].Err != nil || res[0].Response.Seeders != 1 || res[0].Scrape == nil {
		t.Fatalf("probe %+v", res)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := DefaultConfig()
	bad.UDPMaxReply = 10
	if _, err := New(bad); !errors.Is(err, ErrConfig) {
		t.Fatalf("err %v", err)
	}
	c := newTestClient(t, nil)
	if _, err := c.AddTorrent(TorrentConfig{Tiers: [][]string{{"wss://x/announce", "ftp://y"}}}); !errors.Is(err, ErrUnsupportedURL) {
		t.Fatalf("err %v", err)
	}
	c.Close()
	if _, err := c.AddTorrent(TorrentConfig{Tiers: [][]string{{"http://x.test/announce"}}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestProbeBoundedByContext(t *testing.T) {
	dead := newUDPTracker(t, "127.0.0.1")
	dead.SetBehavior(func(b *UDPBehavior) { b.NeverAnswer = true })
	h := newHTTPTracker(t)
	c := newTestClient(t, func(c *Config) { c.UDPMaxRetries = 8 })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	res := c.ProbeTiers(ctx, testHash, [][]string{{dead.URL}, {h.URL}}, AnnounceParams{PeerID: peerID(1), Port: 7001})
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("probe took %v with a 300ms context", d)
	}
	if !errors.Is(res[0].Err, ErrTimeout) || !errors.Is(res[0].Err, context.DeadlineExceeded) || res[0].Protocol != "udp" {
		t.Fatalf("dead: %+v", res[0])
	}
	if res[1].Err != nil || res[1].Response == nil {
		t.Fatalf("live: %+v", res[1])
	}
}

func TestNewPeerID(t *testing.T) {
	a, b := NewPeerID(), NewPeerID()
	if a == b {
		t.Fatal("two peer ids are equal")
	}
	if string(a[:8]) != "-FL0001-" {
		t.Fatalf("prefix %q", a[:8])
	}
	for _, c := range a[8:] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			t.Fatalf("peer id %q: %q is not a letter or digit", a, c)
		}
	}
}
