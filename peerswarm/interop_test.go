package peerswarm

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"flotilla/internal/lab"
	"flotilla/internal/testenv"
	"flotilla/metainfo"
	"flotilla/piecestore"
	"flotilla/swarm"
	"flotilla/swarm/swarmtest"
)

var _ swarm.Storage = (*piecestore.Store)(nil)
var _ swarm.BufferPool = (*piecestore.Store)(nil)
var _ swarm.Worker = (*Swarm)(nil)

func openStore(t testing.TB, dir string, tor *metainfo.Torrent) *piecestore.Store {
	t.Helper()
	cfg := piecestore.DefaultConfig()
	cfg.Dir = dir
	cfg.Info = tor.Info
	cfg.InfoHash = tor.InfoHash
	st, err := piecestore.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// startAria2Swarm starts opentracker and n aria2c seeders on 127.0.0.2...
func startAria2Swarm(t testing.TB, size int64, pieceLen int64, n int) *lab.Swarm {
	t.Helper()
	testenv.Require(t, "aria2c", "opentracker", "mktorrent")
	cl := &lab.Cleanup{}
	t.Cleanup(cl.Run)
	cfg := lab.DefaultSwarmConfig()
	cfg.Dir = t.TempDir()
	cfg.Payload.Size = size
	cfg.PieceLength = pieceLen
	cfg.Seeders = n
	sw, err := lab.StartLoopbackSwarm(context.Background(), cl, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return sw
}

func TestDownloadFromAria2Seeders(t *testing.T) {
	sw := startAria2Swarm(t, 40<<20, 256<<10, 3)
	tor, err := metainfo.Load(sw.Torrent.Path)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	st := openStore(t, out, tor)
	cfg := swarm.DefaultConfig()
	cfg.Info, cfg.InfoHash, cfg.Storage = tor.Info, tor.InfoHash, st
	copy(cfg.PeerID[:], "-FL0001-aria2interop")
	d, err := startDownload(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var addrs []netip.AddrPort
	for _, a := range sw.SeederAddrs {
		addrs = append(addrs, netip.MustParseAddrPort(a))
	}
	start := time.Now()
	d.AddPeers(addrs)
	select {
	case <-d.Complete():
	case <-time.After(60 * time.Second):
		d.Close()
		st.Close()
		t.Fatalf("not complete: %+v", d.Status())
	}
	took := time.Since(start)
	s := d.Status()
	d.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("40 MiB from %d aria2c seeders in %v (%.0f MB/s), peers seen %d", len(addrs), took, 40*1.048576/took.Seconds(), s.Peers)
	if err := sw.Payload.Verify(out); err != nil {
		t.Fatal(err)
	}
}

// announce registers a peer on the tracker as a seeder.
func announce(t testing.TB, tracker string, ih [20]byte, port uint16) {
	t.Helper()
	q := url.Values{}
	q.Set("info_hash", string(ih[:]))
	q.Set("peer_id", "-FL0001-announcetest")
	q.Set("port", fmt.Sprint(port))
	q.Set("uploaded", "0")
	q.Set("downloaded", "0")
	q.Set("left", "0")
	q.Set("event", "completed")
	q.Set("compact", "1")
	resp, err := http.Get(tracker + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("announce: %s", resp.Status)
	}
}

func TestAria2DownloadsFromUs(t *testing.T) {
	testenv.Require(t, "aria2c", "opentracker")
	size := 24<<20 + 777
	x := newTrackedTorrent(t, size)
	tt, ot, tor, dir, torrentPath := x.tt, x.ot, x.tor, x.dir, x.path
	seedDir := x.seedDir(t)

	st := openStore(t, seedDir, tor)
	defer st.Close()
	if err := st.Verify(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	cfg := swarm.DefaultConfig()
	cfg.Info, cfg.InfoHash, cfg.Storage, cfg.Seed = tor.Info, tor.InfoHash, st, true
	copy(cfg.PeerID[:], "-FL0001-seedinterop0")
	cfg.Logger = swarmtest.Logger(t, slog.LevelInfo)
	cfg.Listener = listen(t, "127.0.0.1")
	d, err := startDownload(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	select {
	case <-d.Complete():
	default:
		t.Fatal("seeder not complete after verify")
	}
	announce(t, ot.HTTPAnnounce, tor.InfoHash, addrOf(t, d).Port())

	out := filepath.Join(dir, "out")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	port := testenv.FreePort(t, "127.0.0.9")
	cmd := exec.CommandContext(ctx, "aria2c", lab.Aria2LeechArgs("127.0.0.9", port, out, torrentPath)...)
	cmd.Dir = dir
	t0 := time.Now()
	outb, err := cmd.CombinedOutput()
	t.Logf("aria2c downloaded %d MiB from us in %v", size>>20, time.Since(t0).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("aria2c: %v\n%s\nstatus %+v", err, outb, d.Status())
	}
	got, err := os.ReadFile(filepath.Join(out, "payload.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(tt.Data) {
		t.Fatal("aria2c's copy differs")
	}
	testenv.WaitFor(t, 5*time.Second, "upload counted", func() bool {
		up, _, _ := d.Stats()
		return up >= int64(size)
	})
}
