package lab_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flotilla/internal/lab"
	"flotilla/internal/testenv"
)

// TestNetnsSwarm builds the swarm inside namespaces (tracker, two seeders,
// a client, all on their own addresses behind a bridge, the client's link
// capped), downloads it with aria2c in the client namespace, and checks that
// teardown removes every namespace.
func TestNetnsSwarm(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, "ip", "opentracker", "aria2c")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := newCleanup(t)
	hosts, err := lab.NewStar(ctx, cl, lab.StarConfig{
		Hosts:  []string{"tracker", "seed1", "seed2", "client"},
		Subnet: "10.231.17",
		// 8 MiB at 40 Mbit/s takes at least 1.6 s: proves the cap works.
		RateMbit: map[string]int{"client": 40},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := lab.DefaultSwarmConfig()
	cfg.Dir = t.TempDir()
	cfg.Payload.Size = 8 << 20
	cfg.Seeders = 2
	sw, err := lab.StartSwarm(ctx, cl, cfg, hosts["tracker"], []lab.Host{hosts["seed1"], hosts["seed2"]})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sw.Tracker.HTTPAnnounce, "http://10.231.17.1:") {
		t.Fatalf("tracker at %s", sw.Tracker.HTTPAnnounce)
	}
	c := hosts["client"]
	port, err := c.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	p, err := lab.StartProc(cl, "leecher", c.Command(ctx, "aria2c", lab.Aria2LeechArgs(c.IP(), port, out, sw.Torrent.Path)...),
		filepath.Join(cfg.Dir, "logs", "leecher.log"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-ctx.Done():
		t.Fatalf("leecher did not finish: %s", p.Tail(500))
	}
	if err := p.Err(); err != nil {
		t.Fatalf("leecher: %v: %s", err, p.Tail(500))
	}
	if err := sw.Payload.Verify(out); err != nil {
		t.Fatal(err)
	}
	took := p.Ended().Sub(p.Started)
	t.Logf("8 MiB through the 40 Mbit/s link: %v", took)
	if took < 1300*time.Millisecond {
		t.Errorf("8 MiB through a 40 Mbit/s link took only %v: the tc cap is not working", took)
	}
	cl.Run()
	for _, h := range hosts {
		if _, err := os.Stat("/run/netns/" + h.Name); !os.IsNotExist(err) {
			t.Errorf("namespace %s still exists after teardown (%v)", h.Name, err)
		}
	}
}

func TestStarConfigValidate(t *testing.T) {
	ok := lab.StarConfig{Hosts: []string{"a", "b"}, Subnet: "10.1.2", RateMbit: map[string]int{"a": 100}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []lab.StarConfig{
		{Subnet: "10.1.2"},
		{Hosts: []string{"a"}, Subnet: "10.1"},
		{Hosts: []string{"a"}, Subnet: "10.1.2.3"},
		{Hosts: []string{"a", "a"}, Subnet: "10.1.2"},
		{Hosts: []string{"a/b"}, Subnet: "10.1.2"},
		{Hosts: []string{"a"}, Subnet: "10.1.2", RateMbit: map[string]int{"z": 1}},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestNetnsTransmissionSeeds runs transmission-cli as the only live seeder
// (namespaces: Transmission refuses loopback peers) and downloads from it
// with aria2c: the lab can put Transmission in a swarm.
func TestNetnsTransmissionSeeds(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, "ip", "opentracker", "aria2c", "transmission-cli")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := newCleanup(t)
	hosts, err := lab.NewStar(ctx, cl, lab.StarConfig{Hosts: []string{"tracker", "aria", "tr", "client"}, Subnet: "10.231.18"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := lab.DefaultSwarmConfig()
	cfg.Dir = t.TempDir()
	cfg.Payload.Size = 8 << 20
	cfg.Seeders = 1
	sw, err := lab.StartSwarm(ctx, cl, cfg, hosts["tracker"], []lab.Host{hosts["aria"]})
	if err != nil {
		t.Fatal(err)
	}
	tr := hosts["tr"]
	port, err := tr.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	args, err := lab.TransmissionArgs(filepath.Join(cfg.Dir, "tr-config"), tr.IP(), port, filepath.Dir(sw.Payload.Path), sw.Torrent.Path)
	if err != nil {
		t.Fatal(err)
	}
	seeder, err := lab.StartProc(cl, "transmission", tr.Command(ctx, "transmission-cli", args...), filepath.Join(cfg.Dir, "logs", "transmission.log"))
	if err != nil {
		t.Fatal(err)
	}
	err = lab.Poll(ctx, 30*time.Second, 100*time.Millisecond, func() (bool, error) {
		if seeder.Exited() {
			return false, errors.New(seeder.Tail(500))
		}
		r, err := sw.Tracker.ScrapeInfo(ctx, sw.Torrent.InfoHash)
		return err == nil && r.Complete == 2, nil
	})
	if err != nil {
		t.Fatalf("transmission did not register as a seeder: %v", err)
	}
	sw.Seeders[0].Stop() // from now on only Transmission serves data

	c := hosts["client"]
	cport, err := c.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	p, err := lab.StartProc(cl, "leecher", c.Command(ctx, "aria2c", lab.Aria2LeechArgs(c.IP(), cport, out, sw.Torrent.Path)...),
		filepath.Join(cfg.Dir, "logs", "leecher.log"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-ctx.Done():
		t.Fatalf("leecher did not finish: %s\ntransmission: %s", p.Tail(500), seeder.Tail(500))
	}
	if err := p.Err(); err != nil {
		t.Fatalf("leecher: %v: %s", err, p.Tail(500))
	}
	if err := sw.Payload.Verify(out); err != nil {
		t.Fatal(err)
	}
}

// TestNetnsReapsStale: a namespace left by a lab owner that died (SIGKILL
// skips cleanup) is deleted by the next NewStar.
func TestNetnsReapsStale(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, "ip", "true")
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := fmt.Sprintf("fl%d-1-x", dead.Process.Pid)
	if out, err := exec.Command("ip", "netns", "add", stale).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", stale).Run() })
	cl := newCleanup(t)
	if _, err := lab.NewStar(context.Background(), cl, lab.StarConfig{Hosts: []string{"a"}, Subnet: "10.231.19"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/run/netns/" + stale); !os.IsNotExist(err) {
		t.Fatalf("stale namespace %s not reaped (%v)", stale, err)
	}
}
