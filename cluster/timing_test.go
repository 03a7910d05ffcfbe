package cluster

import (
	"fmt"
	"net"
	"testing"
	"time"

	"flotilla/internal/testenv"
)

// Close must not wait for memberlist's TCP timeout (10 s with the LAN
// profile) when a join attempt hangs on a peer that accepts and says
// nothing.
func TestCloseInterruptsHangingJoin(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.101:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c // hold it open, silent
		}
	}()
	defer func() {
		ln.Close()
		for c := range accepted {
			c.Close()
		}
	}()

	cfg := testConfig(t, "127.0.0.102", mustKey(t))
	cfg.Profile = ProfileLAN
	cfg.Join = []string{ln.Addr().String()}
	c, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "the join to reach the silent peer", func() bool { return len(accepted) > 0 })
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v while a join hung", d)
	}
}

// BenchmarkFailureDetection measures how long the surviving members take to
// report a killed member (memberlist's probes plus the suspicion timeout),
// with the LAN and local profiles, as s-to-detect (the slowest member, worst
// iteration). CI runs it once (scripts/test.sh, -benchtime 1x) so it can
// never rot unseen; it fails only when a member never reports the failure
// within 60 s, never on a figure.
func BenchmarkFailureDetection(b *testing.B) {
	for _, tc := range []struct {
		profile string
		size    int
		base    byte
	}{{ProfileLocal, 3, 110}, {ProfileLAN, 3, 120}, {ProfileLocal, 6, 130}, {ProfileLAN, 6, 140}} {
		b.Run(fmt.Sprintf("%s/%d", tc.profile, tc.size), func(b *testing.B) {
			var worst time.Duration
			for range b.N {
				worst = max(worst, detectFailure(b, tc.profile, tc.size, tc.base))
			}
			b.ReportMetric(worst.Seconds(), "s-to-detect")
			b.ReportMetric(0, "ns/op") // the setup dominates; s-to-detect is the figure
		})
	}
}

// detectFailure starts size members on 127.0.0.base.., kills the last one
// and returns how long the slowest survivor took to report it.
func detectFailure(b *testing.B, profile string, size int, base byte) time.Duration {
	b.StopTimer()
	key := mustKey(b)
	var cs []*Cluster
	var rs []*recorder
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	for i := range size {
		ip := net.IPv4(127, 0, 0, base+byte(i)).String()
		cfg := testConfig(b, ip, key)
		cfg.Profile = profile
		if i > 0 {
			cfg.Join = []string{cs[0].Addr().String()}
		}
		c := startMember(b, cfg)
		cs = append(cs, c)
		rs = append(rs, record(b, c))
	}
	converge(b, 40*time.Second, metas(cs...), cs...)
	victim := cs[len(cs)-1]
	b.StartTimer()
	killed := time.Now()
	if err := victim.ml.Shutdown(); err != nil {
		b.Fatal(err)
	}
	var worst time.Duration
	for _, r := range rs[:len(rs)-1] {
		_, at := r.wait(b, 60*time.Second, EventFail, victim.LocalName())
		worst = max(worst, at.Sub(killed))
	}
	b.StopTimer()
	return worst
}
