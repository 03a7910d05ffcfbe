package coordinator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"flotilla/internal/hostilepeer"
	"flotilla/internal/testenv"
	"flotilla/metainfo"
	"flotilla/peerwire"
)

func hostileTorrent(tor *metainfo.Torrent) hostilepeer.Torrent {
	return hostilepeer.Torrent{InfoHash: tor.InfoHash, NumPieces: tor.Info.NumPieces(),
		PieceLength: tor.Info.PieceLength, Length: tor.Info.Length}
}

// handshakePrefix is a valid handshake for ih cut after n bytes.
func handshakePrefix(ih [20]byte, n int) []byte {
	hs := peerwire.AppendHandshake(nil, peerwire.Handshake{Reserved: peerwire.DefaultReserved(), InfoHash: ih})
	return hs[:n]
}

// waitClosed reads c until the other side closes it, failing the test if
// it sends anything or keeps it open for long.
func waitClosed(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: still open after 30 s", what)
	}
	if n > 0 {
		t.Fatalf("%s: received %d bytes before the close, want none", what, n)
	}
}

// TestOneTorrentOneJob: while a job runs a torrent, a second job for the
// same torrent cannot start (ErrTorrentRunning); a job for another
// torrent can, and once the first job is closed its torrent can start
// again.
func TestOneTorrentOneJob(t *testing.T) {
	c := newTestCoordinator(t)
	tor := newTestTorrent(t, nil)
	first := startTestJob(t, c, tor, t.TempDir(), nil)
	cfg := DefaultJobConfig()
	cfg.Torrent, cfg.Dir, cfg.Preallocate, cfg.DirectIO = tor, t.TempDir(), false, false
	j, err := c.OpenJob(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if err := j.Start(nil); !errors.Is(err, ErrTorrentRunning) {
		t.Fatalf("second Start: %v, want ErrTorrentRunning", err)
	}
	other, _ := newPayloadTorrent(t, "other", []byte("another torrent"))
	startTestJob(t, c, other, t.TempDir(), nil)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	startTestJob(t, c, tor, t.TempDir(), nil)
}

// TestRouteTwoTorrents: one coordinator seeds two torrents; another
// downloads both at once from it as a direct peer, so each of its
// connections reaches the seeder's one listener and is routed by
// info-hash to the right job. Both downloads are byte-identical.
func TestRouteTwoTorrents(t *testing.T) {
	payloadA := bytes.Repeat([]byte("torrent A "), 50000)
	payloadB := bytes.Repeat([]byte("the B torrent "), 30000)
	torA, seedA := newPayloadTorrent(t, "a", payloadA)
	torB, seedB := newPayloadTorrent(t, "b", payloadB)
	seeder := newTestCoordinator(t)
	seedJob(t, seeder, torA, seedA)
	seedJob(t, seeder, torB, seedB)

	leecher := newTestCoordinator(t)
	peer := []netip.AddrPort{seeder.Addr().AddrPort()}
	dirA, dirB := t.TempDir(), t.TempDir()
	jobA := startTestJob(t, leecher, torA, dirA, peer)
	jobB := startTestJob(t, leecher, torB, dirB, peer)
	for _, j := range []*Job{jobA, jobB} {
		if ev, ok := nextEvent(t, j, 30*time.Second).(Completed); !ok {
			t.Fatalf("download %s: %#v, want Completed", j.cfg.Torrent.Info.Name, ev)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []struct {
		dir, name string
		want      []byte
	}{{dirA, "a", payloadA}, {dirB, "b", payloadB}} {
		got, err := os.ReadFile(filepath.Join(f.dir, f.name, "data.bin"))
		if err != nil || !bytes.Equal(got, f.want) {
			t.Errorf("torrent %s: downloaded file differs from the payload (err %v)", f.name, err)
		}
	}
	if s := seeder.Incoming(); s.Routed < 2 || s.Unknown != 0 {
		t.Errorf("seeder's incoming connections %+v, want both torrents routed", s)
	}
}

// TestUnknownTorrentClosed: a connection asking for a torrent no job runs
// is closed without an answer; one for a running torrent gets its
// handshake; once its job is closed, that torrent is unknown too.
func TestUnknownTorrentClosed(t *testing.T) {
	c := newTestCoordinator(t)
	tor := newTestTorrent(t, nil)
	j := startTestJob(t, c, tor, t.TempDir(), nil)
	addr := c.Addr().String()
	sendHandshake := func(ih [20]byte) net.Conn {
		t.Helper()
		conn, err := hostilepeer.Connect(context.Background(), "127.0.0.1", addr, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if _, err := conn.Write(handshakePrefix(ih, peerwire.HandshakeLen)); err != nil {
			t.Fatal(err)
		}
		return conn
	}

	waitClosed(t, sendHandshake([20]byte{1, 2, 3}), "connection for an unknown torrent")
	known, err := hostilepeer.Dial(context.Background(), "127.0.0.1", addr, hostileTorrent(tor), hostilepeer.Options{})
	if err != nil {
		t.Fatalf("connection for the running torrent: %v", err)
	}
	known.Close()
	if s := c.Incoming(); s.Unknown != 1 || s.Routed != 1 {
		t.Errorf("incoming %+v, want one unknown and one routed", s)
	}

	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, sendHandshake(tor.InfoHash), "connection for the torrent of a closed job")
	if s := c.Incoming(); s.Unknown != 2 {
		t.Errorf("incoming %+v, want the closed job's torrent unknown", s)
	}
}

// TestSlowlorisCut: a connection that sends 10 bytes of a handshake and
// stalls is closed once the identification deadline passes; meanwhile
// other peers' connections are routed as usual.
func TestSlowlorisCut(t *testing.T) {
	const timeout = 500 * time.Millisecond
	c := newTestCoordinator(t, func(cfg *Config) { cfg.Incoming.Timeout = timeout })
	tor := newTestTorrent(t, nil)
	startTestJob(t, c, tor, t.TempDir(), nil)
	addr := c.Addr().String()

	slow, err := hostilepeer.Connect(context.Background(), "127.0.0.1", addr, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	start := time.Now()
	if _, err := slow.Write(handshakePrefix(tor.InfoHash, 10)); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the slow connection pending", func() bool { return c.Incoming().Pending == 1 })
	for i := range 3 {
		ip := fmt.Sprintf("127.0.0.%d", 30+i)
		p, err := hostilepeer.Dial(context.Background(), ip, addr, hostileTorrent(tor), hostilepeer.Options{})
		if err != nil {
			t.Fatalf("peer %s while a slowloris is pending: %v", ip, err)
		}
		p.Close()
	}
	waitClosed(t, slow, "slowloris")
	if took := time.Since(start); took < timeout {
		t.Errorf("slowloris closed after %v, before the %v deadline", took, timeout)
	}
	if s := c.Incoming(); s.Failed != 1 || s.Routed != 3 {
		t.Errorf("incoming %+v, want the slowloris failed and three peers routed", s)
	}
}

// TestHalfHandshakeStorm: hundreds of connections from several addresses
// each send half a handshake and hold on. The router never has more
// pending than MaxPending, nor more than MaxPendingPerIP of one address
// (it evicts the oldest), and an honest peer still gets through.
func TestHalfHandshakeStorm(t *testing.T) {
	const maxPending, perIP, storm = 16, 4, 240
	c := newTestCoordinator(t, func(cfg *Config) {
		cfg.Incoming = IncomingConfig{Timeout: time.Minute, MaxPending: maxPending, MaxPendingPerIP: perIP}
	})
	tor := newTestTorrent(t, nil)
	startTestJob(t, c, tor, t.TempDir(), nil)
	addr := c.Addr().String()

	ctx, cancel := context.WithCancel(context.Background())
	var ips []string
	for i := range 8 {
		ips = append(ips, fmt.Sprintf("127.0.0.%d", 40+i))
	}
	connected, wait := hostilepeer.Storm(ctx, ips, addr, storm, handshakePrefix(tor.InfoHash, 30))
	defer func() { cancel(); wait() }()
	if connected != storm {
		t.Fatalf("%d of %d storm connections connected", connected, storm)
	}
	testenv.WaitFor(t, 20*time.Second, "every storm connection accepted", func() bool {
		return c.Incoming().Accepted >= storm
	})
	s := c.Incoming()
	t.Logf("after the storm: %+v", s)
	if s.PeakPending > maxPending || s.PeakPendingPerIP > perIP || s.Pending > maxPending {
		t.Errorf("pending peaked at %d (%d from one address), want at most %d (%d)",
			s.PeakPending, s.PeakPendingPerIP, maxPending, perIP)
	}
	if s.Evicted < storm-maxPending {
		t.Errorf("%d evicted, want at least %d", s.Evicted, storm-maxPending)
	}
	p, err := hostilepeer.Dial(context.Background(), "127.0.0.1", addr, hostileTorrent(tor), hostilepeer.Options{})
	if err != nil {
		t.Fatalf("honest peer after the storm: %v", err)
	}
	p.Close()
}
