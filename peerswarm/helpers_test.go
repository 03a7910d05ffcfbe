package peerswarm

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"flotilla/internal/testenv"
	"flotilla/metainfo"
	"flotilla/peerwire"
	"flotilla/swarm"
	"flotilla/swarm/swarmtest"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if arg := os.Getenv(perfChildEnv); arg != "" {
		// The child process of TestPerfAria2 / BenchmarkPerfAria2.
		if err := perfChild(arg, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "perf child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

func testConfig(tt *swarmtest.Torrent, st swarm.Storage, id byte) swarm.Config {
	cfg := swarm.DefaultConfig()
	cfg.Info = tt.Info
	cfg.InfoHash = tt.InfoHash
	copy(cfg.PeerID[:], "-FL0001-testpeer0000")
	cfg.PeerID[19] = id
	cfg.Storage = st
	cfg.StatusInterval = 50 * time.Millisecond
	return cfg
}

func listen(t testing.TB, ip string) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp4", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// testDownload is a sub-chief with the local peer swarm it was given.
type testDownload struct {
	*swarm.Download
	local *Swarm
}

// Local is the download's local peer swarm.
func (d *testDownload) Local() *Swarm { return d.local }

// Addr is the local swarm's listening address, or nil.
func (d *testDownload) Addr() net.Addr { return d.local.Addr() }

// startDownload starts a local swarm for cfg and a sub-chief with it.
func startDownload(cfg swarm.Config) (*testDownload, error) {
	local, err := New(cfg)
	if err != nil {
		return nil, err
	}
	d, err := swarm.New(cfg, local)
	if err != nil {
		return nil, err
	}
	return &testDownload{Download: d, local: local}, nil
}

func newTestDownload(t testing.TB, cfg swarm.Config) *testDownload {
	t.Helper()
	d, err := startDownload(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func waitComplete(t testing.TB, d *testDownload, timeout time.Duration) {
	t.Helper()
	select {
	case <-d.Complete():
	case <-time.After(timeout):
		st := d.Status()
		t.Fatalf("download not complete after %v: %+v", timeout, st)
	}
}

// dialFrom opens a TCP connection to d from ip and sends pre (if any).
func dialFrom(t *testing.T, d *testDownload, ip string, pre []byte) net.Conn {
	t.Helper()
	dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	c, err := dialer.Dial("tcp", d.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if len(pre) > 0 {
		if _, err := c.Write(pre); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// handshakeFrom dials d from ip and completes the handshake as peer id with
// the given reserved bits. The connection's read deadline is left 10 s
// after the dial.
func handshakeFrom(t *testing.T, d *testDownload, tt *swarmtest.Torrent, ip, id string, reserved [8]byte) net.Conn {
	t.Helper()
	c := dialFrom(t, d, ip, nil)
	var pid [20]byte
	copy(pid[:], id)
	if err := peerwire.WriteHandshake(c, peerwire.Handshake{Reserved: reserved, InfoHash: tt.InfoHash, PeerID: pid}); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := peerwire.ReadHandshake(c); err != nil {
		t.Fatalf("handshake from %s: %v", ip, err)
	}
	return c
}

// newTestSeeder starts a download holding all of tt, seeding on loopback.
func newTestSeeder(t testing.TB, tt *swarmtest.Torrent, id byte) *testDownload {
	t.Helper()
	cfg := testConfig(tt, swarmtest.NewStorage(tt.Info, tt.Data), id)
	cfg.Listener = listen(t, "127.0.0.1")
	cfg.Seed = true
	return newTestDownload(t, cfg)
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// trackedTorrent is a one-file torrent (payload.bin, 256 KiB pieces)
// announcing to an opentracker of its own, for the interop tests.
type trackedTorrent struct {
	tt   *swarmtest.Torrent
	ot   *testenv.Opentracker
	raw  []byte
	tor  *metainfo.Torrent
	dir  string // the test's directory
	path string // dir/x.torrent
}

// newTrackedTorrent builds a size-byte torrent on a fresh opentracker and
// writes it to dir/x.torrent.
func newTrackedTorrent(t *testing.T, size int) *trackedTorrent {
	t.Helper()
	tt := swarmtest.NewTorrent(t, size, 256<<10)
	ot := testenv.StartOpentracker(t, "127.0.0.1", tt.InfoHash)
	raw, err := metainfo.Build("payload.bin", []metainfo.File{{Length: int64(size)}}, 256<<10, [][]string{{ot.HTTPAnnounce}}, bytesReader(tt.Data))
	if err != nil {
		t.Fatal(err)
	}
	tor, err := metainfo.Parse(raw)
	if err != nil || tor.InfoHash != tt.InfoHash {
		t.Fatalf("rebuilt torrent: %v (hash changed: %v)", err, err == nil && tor.InfoHash != tt.InfoHash)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "x.torrent")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return &trackedTorrent{tt: tt, ot: ot, raw: raw, tor: tor, dir: dir, path: path}
}

// seedDir writes the payload to dir/seed, for a seeder to serve.
func (x *trackedTorrent) seedDir(t *testing.T) string {
	t.Helper()
	d := filepath.Join(x.dir, "seed")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "payload.bin"), x.tt.Data, 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}
