package coordinator

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"flotilla/dht"
	"flotilla/internal/testenv"
)

// testDHTConfig is a loopback DHT node joining through boot.
func testDHTConfig(boot string) *dht.Config {
	c := dht.DefaultConfig()
	c.Listen, c.Bootstrap, c.QueryRate = "127.0.0.1:0", []string{boot}, 0
	c.QueryTimeout, c.Tick = 500*time.Millisecond, 50*time.Millisecond
	return &c
}

// TestJobFindsSeedThroughDHT: no trackers and no peers given; the seed's
// job announces itself to a local DHT and the downloader's job finds it
// there and completes.
func TestJobFindsSeedThroughDHT(t *testing.T) {
	router, err := dht.New(*testDHTConfig("127.0.0.1:9"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { router.Close() })
	boot := router.Addr().String()

	tor := newTestTorrent(t, nil)
	seedDir := testPayloadDir(t)
	seeder := newTestCoordinator(t, func(c *Config) { c.DHT = testDHTConfig(boot) })
	seedJob := startTestJob(t, seeder, tor, seedDir, nil, func(c *JobConfig) { c.Seed = true })
	if ev, ok := nextEvent(t, seedJob, 10*time.Second).(Completed); !ok {
		t.Fatalf("seed job: %#v, want Completed", ev)
	}
	testenv.WaitFor(t, 20*time.Second, "the seed's DHT announce", func() bool {
		s, err := router.Stats(context.Background())
		return err == nil && s.Announced > 0
	})

	dir := t.TempDir()
	leecher := newTestCoordinator(t, func(c *Config) { c.DHT = testDHTConfig(boot) })
	job := startTestJob(t, leecher, tor, dir, nil)
	ev, ok := nextEvent(t, job, 30*time.Second).(Completed)
	if !ok {
		t.Fatalf("download: %#v, want Completed", ev)
	}
	if err := job.Close(); err != nil {
		t.Fatal(err)
	}
	checkDownload(t, dir, filepath.Join("payload.bin", "payload.bin"), testPayload)
}

// TestPrivateTorrentSkipsDHT: a private=1 torrent's job runs no lookups.
func TestPrivateTorrentSkipsDHT(t *testing.T) {
	router, err := dht.New(*testDHTConfig("127.0.0.1:9"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { router.Close() })
	c := newTestCoordinator(t, func(c *Config) { c.DHT = testDHTConfig(router.Addr().String()) })
	tor := newTestTorrent(t, nil)
	priv := *tor
	info := *tor.Info
	info.Private = true
	priv.Info = &info
	j := startTestJob(t, c, &priv, t.TempDir(), nil)
	if j.stopDHT != nil {
		t.Fatal("a private torrent's job started DHT lookups")
	}
	pub := startTestJob(t, newTestCoordinator(t, func(c *Config) { c.DHT = testDHTConfig(router.Addr().String()) }), tor, t.TempDir(), nil)
	if pub.stopDHT == nil {
		t.Fatal("a public torrent's job did not start DHT lookups")
	}
}

// TestDHTQueriesOnSharedWatchdog: the DHT node's queries are packets of
// the coordinator's watchdog, and a query nobody answers times out
// through the alert the coordinator routes to the node (its own tick is
// an hour away).
func TestDHTQueriesOnSharedWatchdog(t *testing.T) {
	silent, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	cfg := testDHTConfig(silent.LocalAddr().String())
	cfg.Tick = time.Hour
	c := newTestCoordinator(t, func(c *Config) { c.DHT = cfg })
	testenv.WaitFor(t, 20*time.Second, "the join query to time out", func() bool {
		s, err := c.dht.Stats(context.Background())
		return err == nil && s.Timeouts > 0
	})
	for _, k := range c.wd.Stats() {
		if k.Kind == dht.QueryKind && k.Overdue > 0 {
			return
		}
	}
	t.Fatalf("no overdue %q packet in the coordinator's watchdog: %+v", dht.QueryKind, c.wd.Stats())
}
