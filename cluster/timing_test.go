package cluster

import (
	"net"
	"os"
	"testing"
	"time"
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
	waitFor(t, 5*time.Second, "the join to reach the silent peer", func() bool { return len(accepted) > 0 })
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v while a join hung", d)
	}
}

// TestFailureDetectionTiming measures how long members take to report a
// killed member, with the LAN and local profiles. It takes up to a minute,
// so it runs only with FLOTILLA_CLUSTER_TIMING=1.
func TestFailureDetectionTiming(t *testing.T) {
	if os.Getenv("FLOTILLA_CLUSTER_TIMING") == "" {
		t.Skip("set FLOTILLA_CLUSTER_TIMING=1 to measure failure detection")
	}
	for _, tc := range []struct {
		profile string
		size    int
		base    byte
	}{{ProfileLocal, 3, 110}, {ProfileLAN, 3, 120}, {ProfileLocal, 6, 130}, {ProfileLAN, 6, 140}} {
		t.Run(tc.profile+"/"+string(rune('0'+tc.size)), func(t *testing.T) {
			t.Parallel()
			key := mustKey(t)
			var cs []*Cluster
			var rs []*recorder
			for i := range tc.size {
				ip := net.IPv4(127, 0, 0, tc.base+byte(i)).String()
				cfg := testConfig(t, ip, key)
				cfg.Profile = tc.profile
				if i > 0 {
					cfg.Join = []string{cs[0].Addr().String()}
				}
				c := startMember(t, cfg)
				cs = append(cs, c)
				rs = append(rs, record(t, c))
			}
			converge(t, 40*time.Second, metas(cs...), cs...)
			victim := cs[len(cs)-1]
			killed := time.Now()
			if err := victim.ml.Shutdown(); err != nil {
				t.Fatal(err)
			}
			var worst time.Duration
			for _, r := range rs[:len(rs)-1] {
				_, at := r.wait(t, 60*time.Second, EventFail, victim.LocalName())
				worst = max(worst, at.Sub(killed))
			}
			t.Logf("profile %s, %d members: every member reported the failure within %v", tc.profile, tc.size, worst.Round(10*time.Millisecond))
		})
	}
}
