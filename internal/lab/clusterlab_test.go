package lab_test

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"flotilla/internal/lab"
	"flotilla/internal/testenv"
)

// TestClusterLab builds the issue-4 lab (3 cluster hosts capped at
// 100 Mbit/s, 3 uncapped seeder hosts) and checks: the three hosts
// receiving at once each get close to their cap (the seeders' links are
// not the bottleneck), the cap holds for uploads, the cluster link is not
// capped, the root namespace gets no
// address, and teardown removes every namespace.
func TestClusterLab(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, "ip", "tc")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := newCleanup(t)
	cfg := lab.ClusterConfig{Hosts: []string{"coord", "node1", "node2"}, Seeders: 3,
		WANSubnet: "10.231.40", ClusterSubnet: "10.231.41", RateMbit: 100}
	cluster, err := lab.NewCluster(ctx, cl, cfg)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ip", "-o", "addr").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{cfg.WANSubnet, cfg.ClusterSubnet} {
		if strings.Contains(string(out), " "+s+".") {
			t.Errorf("the root namespace has an address in %s.0/24:\n%s", s, out)
		}
	}

	// Three seeders send to three capped hosts at once: each host gets
	// close to its cap, so neither the seeders' links nor the bridge limit
	// the aggregate. Then one host's upload, which the cap also bounds.
	var wg sync.WaitGroup
	rates := make([]float64, len(cfg.Hosts))
	for i, name := range cfg.Hosts {
		h := cluster.Hosts[name]
		wg.Add(1)
		go func() {
			defer wg.Done()
			rates[i] = tcpRate(t, h.Netns, h.Addr, cluster.Seeders[i], cluster.Seeders[i].Addr, 24<<20)
		}()
	}
	wg.Wait()
	t.Logf("three capped hosts downloading at once, MB/s each (cap 12.5): %.1f", rates)
	for i, r := range rates {
		if r > 13.2 || r < 10.5 {
			t.Errorf("%s downloads at %.1f MB/s through a 100 Mbit/s (12.5 MB/s) cap", cfg.Hosts[i], r)
		}
	}
	up := tcpRate(t, cluster.Seeders[0], cluster.Seeders[0].Addr, cluster.Hosts["node1"].Netns, cluster.Hosts["node1"].Addr, 24<<20)
	t.Logf("node1 uploading: %.1f MB/s", up)
	if up > 13.2 || up < 10.5 {
		t.Errorf("node1 uploads at %.1f MB/s through a 12.5 MB/s cap", up)
	}

	// The cluster link: 64 MiB from node1 to coord, well above the WAN cap.
	c, n := cluster.Hosts["coord"], cluster.Hosts["node1"]
	mbps := tcpRate(t, c.Netns, c.ClusterAddr, n.Netns, n.ClusterAddr, 64<<20)
	t.Logf("cluster link: %.0f MB/s", mbps)
	if mbps < 40 {
		t.Errorf("cluster link carries only %.1f MB/s: it looks capped", mbps)
	}

	cl.Run()
	for _, n := range append([]*lab.Netns{cluster.Tracker, cluster.Hosts["coord"].Netns}, cluster.Seeders...) {
		if _, err := os.Stat("/run/netns/" + n.Name); !os.IsNotExist(err) {
			t.Errorf("namespace %s still exists after teardown (%v)", n.Name, err)
		}
	}
}

// tcpRate sends n bytes over TCP from srcIP in namespace src to dstIP in
// namespace dst and returns MB/s. It may run on any goroutine.
func tcpRate(t *testing.T, dst *lab.Netns, dstIP string, src *lab.Netns, srcIP string, n int64) float64 {
	var ln net.Listener
	if err := dst.Do(func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(dstIP, "0"))
		return err
	}); err != nil {
		t.Error(err)
		return 0
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		m, _ := io.Copy(io.Discard, c)
		got <- m
	}()
	var c net.Conn
	if err := src.Do(func() (err error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(srcIP)}, Timeout: 5 * time.Second}
		c, err = d.Dial("tcp", ln.Addr().String())
		return err
	}); err != nil {
		t.Error(err)
		return 0
	}
	start := time.Now()
	buf := make([]byte, 1<<20)
	for sent := int64(0); sent < n; sent += int64(len(buf)) {
		if _, err := c.Write(buf); err != nil {
			t.Error(err)
			return 0
		}
	}
	c.Close()
	if m := <-got; m != n {
		t.Errorf("received %d bytes of %d", m, n)
		return 0
	}
	return float64(n) / 1e6 / time.Since(start).Seconds()
}

func TestClusterConfigValidate(t *testing.T) {
	ok := lab.ClusterConfig{Hosts: []string{"coord", "node1"}, Seeders: 3, WANSubnet: "10.1.2", ClusterSubnet: "10.1.3", RateMbit: 100}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []lab.ClusterConfig{
		{Seeders: 1, WANSubnet: "10.1.2", ClusterSubnet: "10.1.3"},
		{Hosts: []string{"a"}, WANSubnet: "10.1.2", ClusterSubnet: "10.1.3"},
		{Hosts: []string{"a"}, Seeders: 1, WANSubnet: "10.1.2", ClusterSubnet: "10.1.2"},
		{Hosts: []string{"a"}, Seeders: 1, WANSubnet: "10.1", ClusterSubnet: "10.1.3"},
		{Hosts: []string{"seed1"}, Seeders: 1, WANSubnet: "10.1.2", ClusterSubnet: "10.1.3"},
		{Hosts: []string{"a", "a"}, Seeders: 1, WANSubnet: "10.1.2", ClusterSubnet: "10.1.3"},
		{Hosts: []string{"a"}, Seeders: 1, WANSubnet: "10.1.2", ClusterSubnet: "10.1.3", HostRateMbit: map[string]int{"b": 1}},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestClusterLogParsing(t *testing.T) {
	if v, ok := lab.ProgressPercent(" 42.5%  27.2 MiB / 64.0 MiB  down 1 MiB/s"); !ok || v != 42.5 {
		t.Fatalf("ProgressPercent = %v, %v", v, ok)
	}
	if _, ok := lab.ProgressPercent("time=2026 level=INFO msg=x"); ok {
		t.Fatal("a log line parsed as progress")
	}
	log := "100.0%  ...\ndownloaded x (64.0 MiB) to /o/x; received 1 bytes from peers in 1s (1 B/s)\n" +
		"  local                       63 pieces  19.7 MiB received  0 hash failures\n" +
		"time=2026 level=INFO msg=\"download complete\"\n" +
		"  node1                       71 pieces  18.6 MiB received  2 hash failures\n"
	c, err := lab.Contributions(log)
	if err != nil {
		t.Fatal(err)
	}
	if c["local"].Pieces != 63 || c["node1"].Pieces != 71 || c["node1"].HashFails != 2 || c["node1"].Received != "18.6 MiB" {
		t.Fatalf("Contributions = %+v", c)
	}
	if _, err := lab.Contributions("  local  1 pieces  1 B received  0 hash failures\n"); err == nil {
		t.Fatal("a log without completion parsed")
	}
	eg, err := lab.EndGameOf(log + "  end game: 3 pieces duplicated (3145728 bytes, 4.69% of the size), 2 copies cancelled, 1 delivered twice\n")
	if err != nil || eg != (lab.EndGame{Duplicated: 3, DuplicatedBytes: 3 << 20, Cancelled: 2, Twice: 1}) {
		t.Fatalf("EndGameOf = %+v, %v", eg, err)
	}
	if _, err := lab.EndGameOf(log); err == nil {
		t.Fatal("a log without an end game line parsed")
	}
}

func TestParseNetDev(t *testing.T) {
	text := "Inter-|   Receive                                                |  Transmit\n" +
		" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n" +
		"    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n" +
		"  eth0: 1048576    900    0    0    0     0          0         0    20480     300    0    0    0     0       0          0\n"
	rx, tx, err := lab.ParseNetDev([]byte(text), "eth0")
	if err != nil || rx != 1048576 || tx != 20480 {
		t.Fatalf("eth0: %d %d %v", rx, tx, err)
	}
	if _, _, err := lab.ParseNetDev([]byte(text), "eth1"); err == nil {
		t.Fatal("eth1 found in a text without it")
	}
}
