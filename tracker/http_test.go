package tracker

import (
	"errors"
	"strings"
	"testing"
	"time"

	"flotilla/tracker/internal/wire"
	"flotilla/tracker/trackertest"
)

type HTTPBehavior = trackertest.HTTPBehavior

func TestHTTPAnnounceQueryAndTrackerID(t *testing.T) {
	tr := newHTTPTracker(t)
	tr.SetBehavior(func(b *HTTPBehavior) { b.TrackerID = "tid-42"; b.Warning = "be nice" })
	c := newTestClient(t, nil)
	a := addTorrent(t, c, testHash, 1, 7001, []string{tr.URL + "?passkey=s3cr%2Ft"})
	u := nextUpdate(t, a, 2*time.Second, "started", okAnnounce(EventStarted))
	if u.Response.TrackerID != "tid-42" || u.Response.Warning != "be nice" || u.Response.Leechers != 1 {
		t.Fatalf("response %+v", u.Response)
	}
	a.MorePeers()
	nextUpdate(t, a, 2*time.Second, "second announce", okAnnounce(EventNone))
	qs := tr.Queries()
	if len(qs) != 2 {
		t.Fatalf("queries %q", qs)
	}
	want := "passkey=s3cr%2Ft&info_hash=%00%FFa-._~%20%25%26%3D%2B%7F%80Z9%2F%3F%23%01&peer_id=-FL0001-%01%01%01%01%01%01%01%01%01%01%01%01&port=7001&uploaded=0&downloaded=0&left=1000&compact=1&event=started&numwant=50&key=DEADBEEF"
	if qs[0] != want {
		t.Fatalf("first query\n got %s\nwant %s", qs[0], want)
	}
	if strings.Contains(qs[0], "trackerid") || !strings.HasSuffix(qs[1], "&trackerid=tid-42") || strings.Contains(qs[1], "event=") {
		t.Fatalf("second query %s: the tracker id must be echoed, no event", qs[1])
	}
}

func TestHTTPPeerModels(t *testing.T) {
	v6 := wire.Peer{Addr: mustAddrPort("[2001:db8::7]:51413")}
	for _, dict := range []bool{false, true} {
		tr := newHTTPTracker(t)
		tr.SetBehavior(func(b *HTTPBehavior) { b.DictModel = dict; b.ExtraPeers = []wire.Peer{v6} })
		c := newTestClient(t, nil)
		other := addTorrent(t, c, testHash, 2, 7002, []string{tr.URL})
		nextUpdate(t, other, 2*time.Second, "other started", okAnnounce(EventStarted))
		a := addTorrent(t, c, testHash, 1, 7001, []string{tr.URL})
		u := nextUpdate(t, a, 2*time.Second, "started", okAnnounce(EventStarted))
		ps := u.Response.Peers
		if len(ps) != 2 || ps[0].Addr != mustAddrPort("127.0.0.1:7002") || ps[1].Addr != v6.Addr {
			t.Fatalf("dict=%v peers %+v", dict, ps)
		}
		id2 := peerID(2)
		if wantID := map[bool]string{true: string(id2[:])}[dict]; ps[0].ID != wantID {
			t.Fatalf("dict=%v id %q", dict, ps[0].ID)
		}
	}
}

func TestHTTPErrors(t *testing.T) {
	cases := []struct {
		name string
		beh  func(*HTTPBehavior)
		want error
	}{
		{"failure reason", func(b *HTTPBehavior) { b.Failure = "unregistered torrent" }, ErrTrackerFailure},
		{"failure with 400", func(b *HTTPBehavior) { b.Failure = "bad"; b.Status = 400 }, ErrTrackerFailure},
		{"garbage", func(b *HTTPBehavior) { b.Garbage = true }, ErrMalformed},
		{"status", func(b *HTTPBehavior) { b.Garbage = true; b.Status = 503 }, ErrHTTPStatus},
		{"oversized", func(b *HTTPBehavior) { b.Oversized = 4097 }, ErrReplyTooLarge},
		{"hang", func(b *HTTPBehavior) { b.Hang = true }, ErrTimeout},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := newHTTPTracker(t)
			tr.SetBehavior(tc.beh)
			c := newTestClient(t, func(c *Config) { c.MaxResponseSize = 4096; c.HTTPTimeout = 300 * time.Millisecond })
			a := addTorrent(t, c, testHash, 1, 7001, []string{tr.URL})
			u := nextUpdate(t, a, 2*time.Second, tc.name, failedAnnounce(tc.want))
			if !strings.Contains(u.Err.Error(), tr.URL) {
				t.Fatalf("error %q does not name the tracker", u.Err)
			}
		})
	}
}

func TestHTTPGzip(t *testing.T) {
	tr := newHTTPTracker(t)
	tr.SetBehavior(func(b *HTTPBehavior) { b.Gzip = true; b.TrackerID = "z" })
	c := newTestClient(t, nil)
	a := addTorrent(t, c, testHash, 1, 7001, []string{tr.URL})
	if u := nextUpdate(t, a, 2*time.Second, "started", okAnnounce(EventStarted)); u.Response.TrackerID != "z" {
		t.Fatalf("response %+v", u.Response)
	}
}

func TestScrapeURLConvention(t *testing.T) {
	cases := map[string]string{
		"http://t.example/announce":             "http://t.example/scrape",
		"http://t.example/x/announce.php?k=v":   "http://t.example/x/scrape.php?k=v",
		"https://t.example:8443/announce?a=%2F": "https://t.example:8443/scrape?a=%2F",
		"http://t.example/a":                    "",
		"http://t.example/announce/x":           "",
		"http://t.example/x%064dannounce":       "",
	}
	for in, want := range cases {
		got, err := wire.ScrapeURL(in)
		if want == "" {
			if !errors.Is(err, ErrScrapeUnsupported) {
				t.Errorf("%s: got %q, %v; want ErrScrapeUnsupported", in, got, err)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("%s: got %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestScrape(t *testing.T) {
	h := newHTTPTracker(t)
	u := newUDPTracker(t, "127.0.0.1")
	noScrape := newHTTPTracker(t)
	c := newTestClient(t, func(c *Config) { c.AllTiers = true })
	seed, err := c.AddTorrent(TorrentConfig{InfoHash: testHash, Tiers: [][]string{{h.URL}, {u.URL}},
		Params: AnnounceParams{PeerID: peerID(9), Port: 7009}}) // Left 0: a seeder
	if err != nil {
		t.Fatal(err)
	}
	defer seed.Close()
	nextUpdate(t, seed, 2*time.Second, "seed started", okAnnounce(EventStarted))
	nextUpdate(t, seed, 2*time.Second, "seed started", okAnnounce(EventStarted))
	odd := strings.Replace(noScrape.URL, "/announce", "/ann", 1)
	a := addTorrent(t, c, testHash, 1, 7001, []string{h.URL}, []string{u.URL}, []string{odd})
	for range 2 {
		nextUpdate(t, a, 2*time.Second, "started", okAnnounce(EventStarted))
	}
	a.Scrape()
	got := map[string]Update{}
	for len(got) < 3 {
		up := nextUpdate(t, a, 2*time.Second, "scrape", func(u Update) bool { return u.Kind == UpdateScrape })
		got[up.URL] = up
	}
	for _, url := range []string{h.URL, u.URL} {
		s := got[url].Scrape
		if got[url].Err != nil || s == nil || s.Seeders != 1 || s.Leechers != 1 {
			t.Fatalf("%s: %+v %v", url, s, got[url].Err)
		}
	}
	if !errors.Is(got[odd].Err, ErrScrapeUnsupported) {
		t.Fatalf("odd url: %v", got[odd].Err)
	}
	if h.Scrapes() != 1 || u.Stats().Scrapes != 1 {
		t.Fatalf("scrapes http %d udp %d", h.Scrapes(), u.Stats().Scrapes)
	}
}
