package dht

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// BenchmarkDHTLookup: a local 100-node DHT; one node announces a torrent,
// then lookups from random other nodes time the first peer found.
// Reports the median and p99 time to the first peer and the UDP packets
// (queries) a lookup sends.
func BenchmarkDHTLookup(b *testing.B) {
	nodes := newTestDHT(b, 100)
	ih := RandomID()
	ctx := context.Background()
	if res, err := nodes[0].GetPeers(ctx, ih, LookupOptions{Announce: true, Port: 7000}); err != nil || res.Announced == 0 {
		b.Fatalf("announce: %+v %v", res, err)
	}
	var firsts []time.Duration
	var packets, misses int
	b.ResetTimer()
	for b.Loop() {
		n := nodes[1+rand.IntN(len(nodes)-1)]
		start := time.Now()
		first := make(chan time.Duration, 1)
		res, err := n.GetPeers(ctx, ih, LookupOptions{OnPeers: func([]netip.AddrPort) {
			select {
			case first <- time.Since(start):
			default:
			}
		}})
		if err != nil {
			b.Fatal(err)
		}
		packets += res.Queries
		select {
		case d := <-first:
			firsts = append(firsts, d)
		default:
			misses++
		}
	}
	b.StopTimer()
	var all Stats
	for _, n := range nodes {
		s, _ := n.Stats(ctx)
		all.Timeouts += s.Timeouts
		all.Dropped += s.Dropped
		all.Busy += s.Busy
		all.Malformed += s.Malformed
		all.UnknownTx += s.UnknownTx
		all.Sent += s.Sent
		all.Received += s.Received
	}
	b.Logf("all nodes: %+v", all)
	if len(firsts) == 0 {
		b.Fatal("no lookup found the peer")
	}
	slices.Sort(firsts)
	b.ReportMetric(float64(firsts[len(firsts)/2].Microseconds()), "µs-first-peer-p50")
	b.ReportMetric(float64(firsts[len(firsts)*99/100].Microseconds()), "µs-first-peer-p99")
	b.ReportMetric(float64(packets)/float64(b.N), "packets/lookup")
	b.ReportMetric(float64(misses)/float64(b.N), "miss-ratio")
}
