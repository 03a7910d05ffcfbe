package tracker_test

import (
	"context"
	"fmt"
	"time"

	"flotilla/tracker"
	"flotilla/tracker/trackertest"
)

// Probe is what `coord announce` runs: started, scrape, stopped against
// every tracker of a torrent, concurrently.
func ExampleClient_Probe() {
	udp, _ := trackertest.NewUDP("127.0.0.1")
	defer udp.Close()
	cfg := tracker.DefaultConfig()
	cfg.UDPListen4 = "127.0.0.1:0"
	c, _ := tracker.New(cfg)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tiers := [][]string{{udp.URL}, {"wss://unsupported.example/announce"}}
	for _, r := range c.ProbeTiers(ctx, [20]byte{1}, tiers, tracker.AnnounceParams{PeerID: tracker.NewPeerID(), Port: 6881}) {
		if r.Err != nil {
			fmt.Printf("tier %d %s: error\n", r.Tier, r.URL[:6])
			continue
		}
		fmt.Printf("tier %d %s: %d seeders, interval %v, scrape %d seeders\n",
			r.Tier, r.Protocol, r.Response.Seeders, r.Response.Interval, r.Scrape.Seeders)
	}
	// Output:
	// tier 0 udp: 1 seeders, interval 30m0s, scrape 1 seeders
	// tier 1 wss://: error
}

// An Announcer keeps announcing a torrent; its Updates report every answer.
func ExampleClient_AddTorrent() {
	udp, _ := trackertest.NewUDP("127.0.0.1")
	defer udp.Close()
	cfg := tracker.DefaultConfig()
	cfg.UDPListen4 = "127.0.0.1:0"
	c, _ := tracker.New(cfg)
	defer c.Close()
	a, _ := c.AddTorrent(tracker.TorrentConfig{
		InfoHash: [20]byte{2},
		Tiers:    [][]string{{udp.URL}},
		Params:   tracker.AnnounceParams{PeerID: tracker.NewPeerID(), Port: 6881, Left: 1 << 20},
	})
	u := <-a.Updates()
	fmt.Println(u.Kind, u.Event, u.Err, u.Response.Leechers)
	a.Close() // sends "stopped"
	fmt.Println(udp.Events())
	// Output:
	// announce started <nil> 1
	// [started stopped]
}
