package tracker

import (
	"context"
	"testing"
	"time"

	"flotilla/internal/testenv"
)

// Interop with the real opentracker (Debian package), over HTTP and UDP:
// two clients with different peer ids and ports see each other, and scrape
// counts match (one seeder, one leecher).
func TestOpentrackerInterop(t *testing.T) {
	ih := [20]byte{0xf1, 0x07, 0x11, 0x1a, 0x00, 0xff, 0x25, 0x26, 0x3d, 0x20}
	ot := testenv.StartOpentracker(t, "127.0.0.1", ih)
	for _, tc := range []struct{ name, url string }{{"http", ot.HTTPAnnounce}, {"udp", ot.UDPAnnounce}} {
		t.Run(tc.name, func(t *testing.T) {
			seedC := newTestClient(t, func(c *Config) { c.UDPRetryBase = 500 * time.Millisecond })
			leechC := newTestClient(t, func(c *Config) { c.UDPRetryBase = 500 * time.Millisecond })
			port := map[string]uint16{"http": 0, "udp": 100}[tc.name]
			seed, err := seedC.AddTorrent(TorrentConfig{InfoHash: ih, Tiers: [][]string{{tc.url}},
				Params: AnnounceParams{PeerID: peerID(0xaa), Port: 16881 + port, Left: 0, Key: 1}})
			if err != nil {
				t.Fatal(err)
			}
			defer seed.Close()
			nextUpdate(t, seed, 5*time.Second, "seed started", okAnnounce(EventStarted))
			leech, err := leechC.AddTorrent(TorrentConfig{InfoHash: ih, Tiers: [][]string{{tc.url}},
				Params: AnnounceParams{PeerID: peerID(0xbb), Port: 16882 + port, Left: 12345, Key: 2, NumWant: 50}})
			if err != nil {
				t.Fatal(err)
			}
			defer leech.Close()
			u := nextUpdate(t, leech, 5*time.Second, "leech started", okAnnounce(EventStarted))
			if !hasPort(u.Response.Peers, 16881+port) {
				t.Fatalf("leecher's peers %+v lack the seeder", u.Response.Peers)
			}
			if u.Response.Seeders != 1 || u.Response.Leechers != 1 {
				t.Fatalf("counts %d/%d, want 1 seeder 1 leecher", u.Response.Seeders, u.Response.Leechers)
			}
			if u.Response.Interval <= 0 {
				t.Fatalf("interval %v", u.Response.Interval)
			}
			// the seeder sees the leecher too. opentracker's HTTP min interval
			// (15 min) rightly stops MorePeers from re-announcing, so the
			// seeder starts a new session (stopped, then started).
			seed.Close()
			seed, err = seedC.AddTorrent(TorrentConfig{InfoHash: ih, Tiers: [][]string{{tc.url}},
				Params: AnnounceParams{PeerID: peerID(0xaa), Port: 16881 + port, Left: 0, Key: 1}})
			if err != nil {
				t.Fatal(err)
			}
			defer seed.Close()
			w, err := seed.WatchPeers(context.Background(), tc.url)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			testenv.WaitFor(t, 5*time.Second, "the seeder's peer list to hold the leecher", func() bool {
				ps, err := w.Peers(context.Background())
				if err != nil {
					return false
				}
				var plain []Peer
				for _, e := range ps {
					plain = append(plain, e.Peer)
				}
				return hasPort(plain, 16882+port)
			})
			leech.Scrape()
			s := nextUpdate(t, leech, 5*time.Second, "scrape", func(u Update) bool { return u.Kind == UpdateScrape })
			if s.Err != nil || s.Scrape.Seeders != 1 || s.Scrape.Leechers != 1 {
				t.Fatalf("scrape %+v %v", s.Scrape, s.Err)
			}
			// stopped on close: the swarm empties
			seed.Close()
			leech.Close()
			res := newTestClient(t, nil).ProbeTiers(context.Background(), ih, [][]string{{tc.url}},
				AnnounceParams{PeerID: peerID(0xcc), Port: 16883 + port, Left: 1})
			if r := res[0]; r.Err != nil || r.Response.Seeders != 0 || r.Response.Leechers != 1 || r.Scrape == nil || r.StopErr != nil {
				t.Fatalf("probe after both stopped: %+v (scrape %+v)", r, r.Scrape)
			}
		})
	}
}

func hasPort(ps []Peer, port uint16) bool {
	for _, p := range ps {
		if p.Addr.Port() == port && p.Addr.Addr().String() == "127.0.0.1" {
			return true
		}
	}
	return false
}
