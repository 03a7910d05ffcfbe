package tracker

import (
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"flotilla/tracker/internal/wire"
	"flotilla/tracker/trackertest"
	"flotilla/watchdog"
)

// BenchmarkPipelines holds 10,000 tracker pipelines (1,000 torrents × 10
// UDP trackers, every tracker in its own tier with Config.AllTiers, so all
// 10,000 pipelines are active) against 10 in-process UDP trackers on
// 127.0.0.1 that answer with 5 peers each. It reports
//
//   - B/pipeline: HeapInuse+StackInuse growth per idle pipeline after every
//     pipeline made its "started" announce and holds its 5-peer list,
//     watchdog schedule entry and connection state (GC run first);
//   - goroutines/pipeline: goroutine growth per pipeline (pipelines plus one
//     announcer goroutine per torrent);
//   - announces/s: sustained UDP announce round trips per second while the
//     announcers repeatedly ask for more peers, at most `window` in flight.
//
// Run: go test -run '^$' -bench BenchmarkPipelines -benchtime 100000x ./tracker/
func BenchmarkPipelines(b *testing.B) {
	const torrents, trackers, window = 1000, 10, 1000
	var urls []string
	var extra []wire.Peer
	for i := range 5 {
		extra = append(extra, wire.Peer{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 6881)})
	}
	for range trackers {
		tr, err := trackertest.NewUDP("127.0.0.1")
		if err != nil {
			b.Fatal(err)
		}
		defer tr.Close()
		tr.SetBehavior(func(bh *trackertest.UDPBehavior) { bh.Stateless = true; bh.ExtraPeers = extra })
		urls = append(urls, tr.URL)
	}
	wd, err := watchdog.New(watchdog.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer wd.Close()
	cfg := DefaultConfig()
	cfg.Watchdog = wd
	cfg.UDPListen4 = "127.0.0.1:0"
	cfg.AllTiers = true
	cfg.MinInterval = 0
	cfg.UDPRetryBase = 5 * time.Second
	c, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	tiers := make([][]string, trackers)
	for i, u := range urls {
		tiers[i] = []string{u}
	}
	fulfilled := func() int64 {
		for _, k := range wd.Stats() {
			if k.Kind == KindAnnounce {
				return k.Count
			}
		}
		return 0
	}
	waitFulfilled := func(n int64) {
		deadline := time.Now().Add(60 * time.Second)
		for fulfilled() < n {
			if time.Now().After(deadline) {
				b.Fatalf("only %d of %d announces answered (udp %+v)", fulfilled(), n, c.UDPStats())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	before := memInUse()
	g0 := runtime.NumGoroutine()
	as := make([]*Announcer, torrents)
	for i := range as {
		var ih [20]byte
		copy(ih[:], fmt.Sprintf("torrent-%08d", i))
		a, err := c.AddTorrent(TorrentConfig{InfoHash: ih, Tiers: tiers,
			Params: AnnounceParams{PeerID: peerID(byte(i)), Port: 6881, Left: 1 << 30, NumWant: 50}})
		if err != nil {
			b.Fatal(err)
		}
		as[i] = a
		if sent := int64(i+1) * trackers; sent-c.UDPStats().Received > window {
			for sent-c.UDPStats().Received > window/2 {
				time.Sleep(time.Millisecond)
			}
		}
	}
	pipelines := int64(torrents * trackers)
	waitFulfilled(pipelines)
	for _, a := range as { // drain the started updates: an idle pipeline has none queued
		for len(a.Updates()) > 0 {
			<-a.Updates()
		}
	}
	after := memInUse()
	if f := os.Getenv("TRACKER_BENCH_HEAP"); f != "" { // heap profile of the idle pipelines
		if out, err := os.Create(f); err == nil {
			pprof.Lookup("heap").WriteTo(out, 0)
			out.Close()
		}
	}
	g1 := runtime.NumGoroutine()
	perPipeline := float64(after-before) / float64(pipelines)
	goroutines := float64(g1-g0) / float64(pipelines)

	// Sustained rate: announces answered while the announcers keep asking
	// (at most `window` round trips in flight). MorePeers calls that reach a
	// pipeline still waiting on an earlier announce coalesce, so the count
	// of answers, not of calls, is what is measured.
	b.ResetTimer()
	base := fulfilled()
	issued := int64(0)
	recv0 := c.UDPStats().Received
	start := time.Now()
	for issued < int64(b.N) {
		for _, a := range as {
			a.MorePeers()
			issued += trackers
			for issued-(c.UDPStats().Received-recv0) > window {
				time.Sleep(100 * time.Microsecond)
			}
			if issued >= int64(b.N) {
				break
			}
		}
	}
	// let the last window finish (a few lost datagrams wait for their
	// retransmission; those coalesced calls never come, hence 95%)
	deadline := time.Now().Add(30 * time.Second)
	answered := fulfilled() - base
	for answered < issued*95/100 {
		if time.Now().After(deadline) {
			b.Fatalf("only %d answers to %d requests (udp %+v)", answered, issued, c.UDPStats())
		}
		time.Sleep(time.Millisecond)
		answered = fulfilled() - base
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(answered)/elapsed.Seconds(), "announces/s")
	b.ReportMetric(perPipeline, "B/pipeline")
	b.ReportMetric(goroutines, "goroutines/pipeline")
	b.ReportMetric(0, "ns/op")
}

// memInUse returns heap plus stack bytes in use after garbage collection
// (several cycles, so idle goroutine stacks shrink to what they use).
func memInUse() uint64 {
	var ms runtime.MemStats
	for range 4 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	if testing.Verbose() {
		fmt.Printf("heap in use %d, stacks in use %d\n", ms.HeapInuse, ms.StackInuse)
	}
	return ms.HeapInuse + ms.StackInuse
}
