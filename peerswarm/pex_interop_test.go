package peerswarm

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flotilla/internal/lab"
	"flotilla/internal/testenv"
	"flotilla/swarm"
	"flotilla/swarm/swarmtest"
)

// aria2PexArgs turns PEX on in aria2c's arguments (the lab turns it off).
func aria2PexArgs(args []string, extra ...string) []string {
	out := make([]string, 0, len(args)+len(extra))
	for _, a := range args {
		if a == "--enable-peer-exchange=false" {
			a = "--enable-peer-exchange=true"
		}
		out = append(out, a)
	}
	// Options go before the torrent path, the last argument.
	return append(append(out[:len(out)-1:len(out)-1], extra...), out[len(out)-1])
}

// TestPexFromAria2: aria2c seeder S and aria2c leecher A find each other
// through a tracker we are not told of; we are given only A, learn S from
// A's ut_pex, connect to it and download the torrent byte-identical (A's
// upload is throttled to a trickle, so the bytes come from S).
func TestPexFromAria2(t *testing.T) {
	testenv.Require(t, "aria2c", "opentracker")
	size := 8<<20 + 333
	x := newTrackedTorrent(t, size)
	tt, ot, tor, dir, torrentPath := x.tt, x.ot, x.tor, x.dir, x.path
	seedDir, aDir := x.seedDir(t), filepath.Join(x.dir, "a")

	ctx, cancel := context.WithCancel(context.Background())
	var procs []*exec.Cmd
	t.Cleanup(func() {
		cancel()
		for _, c := range procs {
			c.Wait()
		}
	})
	start := func(name string, args []string) {
		cmd := exec.CommandContext(ctx, "aria2c", args...)
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = swarmtest.Writer(t), swarmtest.Writer(t)
		if err := cmd.Start(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		procs = append(procs, cmd)
	}
	sPort := testenv.FreePort(t, "127.0.0.2")
	start("seeder S", aria2PexArgs(lab.Aria2SeedArgs("127.0.0.2", sPort, seedDir, torrentPath)))
	// A must dial S (aria2c tells only of peers it dialed): S announces
	// first, so it learns of A only at its next announce, long after.
	testenv.WaitFor(t, 30*time.Second, "S announced", func() bool {
		resp, err := http.Get(ot.Scrape + "?info_hash=" + url.QueryEscape(string(tt.InfoHash[:])))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), "8:completei1e")
	})
	aPort := testenv.FreePort(t, "127.0.0.3")
	start("leecher A", aria2PexArgs(lab.Aria2LeechArgs("127.0.0.3", aPort, aDir, torrentPath),
		"--max-download-limit=64K", "--max-upload-limit=4K"))
	// A has bytes: it found S through the tracker and is connected to it,
	// so its first PEX to us names S.
	testenv.WaitFor(t, 30*time.Second, "A downloading from S", func() bool {
		fi, err := os.Stat(filepath.Join(aDir, "payload.bin"))
		return err == nil && fi.Size() > 0
	})

	var logs testenv.SyncBuffer
	st := swarmtest.NewStorage(tt.Info, nil)
	cfg := swarm.DefaultConfig()
	cfg.Info, cfg.InfoHash, cfg.Storage = tor.Info, tor.InfoHash, st
	copy(cfg.PeerID[:], "-FL0001-pexinterop00")
	cfg.Listener = listen(t, "127.0.0.4")
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d := newTestDownload(t, cfg)
	aAddr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.3"), uint16(aPort))
	d.AddPeers([]netip.AddrPort{aAddr})
	t0 := time.Now()
	select {
	case <-d.Complete():
	case <-time.After(60 * time.Second):
		t.Fatalf("not complete: %+v\n%s", d.Status(), logs.String())
	}
	t.Logf("8 MiB in %v, told only of aria2c A", time.Since(t0).Round(time.Millisecond))
	if string(st.Bytes()) != string(tt.Data) {
		t.Fatal("downloaded data differs")
	}
	out := logs.String()
	learned := fmt.Sprintf(`msg="peers learned by PEX" swarm=local from=%v`, aAddr)
	connected := fmt.Sprintf(`msg="peer connected" swarm=local peer=127.0.0.2:%d`, sPort)
	if !strings.Contains(out, learned) || !strings.Contains(out, connected) {
		t.Fatalf("want %q and %q in the log:\n%s", learned, connected, out)
	}
}

// TestAria2LearnsFromOurPex: the other direction. aria2c X finds only our
// swarm B through the tracker; B has no piece but is connected to our
// seeder C, which nobody announced: X learns C from B's ut_pex and
// downloads the torrent from it byte-identical.
func TestAria2LearnsFromOurPex(t *testing.T) {
	testenv.Require(t, "aria2c", "opentracker")
	size := 4<<20 + 99
	x := newTrackedTorrent(t, size)
	tt, ot, dir, torrentPath := x.tt, x.ot, x.dir, x.path

	cCfg := testConfig(tt, swarmtest.NewStorage(tt.Info, tt.Data), 1)
	cCfg.Listener = listen(t, "127.0.0.2")
	cCfg.Seed = true
	c := newTestDownload(t, cCfg)

	bCfg := testConfig(tt, swarmtest.NewStorage(tt.Info, nil), 2)
	bCfg.Listener = listen(t, "127.0.0.1") // where the tracker, seeing the announce come from there, says B is
	bCfg.PexInterval = time.Second
	b, err := New(bCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	b.AddPeers([]netip.AddrPort{addrOf(t, c)})
	testenv.WaitFor(t, 10*time.Second, "B connected to C", func() bool { return b.Status().Peers > 0 })
	announce(t, ot.HTTPAnnounce, tt.InfoHash, netip.MustParseAddrPort(b.Addr().String()).Port())

	out := filepath.Join(dir, "out")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	port := testenv.FreePort(t, "127.0.0.9")
	cmd := exec.CommandContext(ctx, "aria2c", aria2PexArgs(lab.Aria2LeechArgs("127.0.0.9", port, out, torrentPath))...)
	cmd.Dir = dir
	t0 := time.Now()
	outb, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("aria2c: %v\n%s", err, outb)
	}
	t.Logf("aria2c downloaded %d MiB in %v, told only of B", size>>20, time.Since(t0).Round(time.Millisecond))
	got, err := os.ReadFile(filepath.Join(out, "payload.bin"))
	if err != nil || string(got) != string(tt.Data) {
		t.Fatalf("aria2c's copy differs (%v)", err)
	}
}
