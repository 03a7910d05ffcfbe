package delegate

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"flotilla/internal/testenv"
	"flotilla/peerswarm"
	"flotilla/swarm"
	"flotilla/swarm/swarmtest"
)

func swarmConfig(t testing.TB, tt *swarmtest.Torrent, st swarm.Storage, id byte) swarm.Config {
	cfg := swarm.DefaultConfig()
	cfg.Info, cfg.InfoHash, cfg.Storage = tt.Info, tt.InfoHash, st
	copy(cfg.PeerID[:], "-FL0001-testpeer0000")
	cfg.PeerID[19] = id
	cfg.StatusInterval = 50 * time.Millisecond
	cfg.Logger = swarmtest.Logger(t, slog.LevelWarn)
	return cfg
}

// newSeeder starts a swarm download holding all of tt, seeding on loopback.
func newSeeder(t testing.TB, tt *swarmtest.Torrent) *testDownload {
	t.Helper()
	cfg := swarmConfig(t, tt, swarmtest.NewStorage(tt.Info, tt.Data), 1)
	cfg.Seed = true
	return newDownload(t, cfg)
}

// testDownload is a sub-chief with the local swarm it was given.
type testDownload struct {
	*swarm.Download
	local *peerswarm.Swarm
}

// Addr is the local swarm's listening address.
func (d *testDownload) Addr() net.Addr { return d.local.Addr() }

func newDownload(t testing.TB, cfg swarm.Config) *testDownload {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listener = ln
	local, err := peerswarm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d, err := swarm.New(cfg, local)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return &testDownload{Download: d, local: local}
}

func addrPort(t testing.TB, a net.Addr) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// newRealNode starts a node Server with the default worker (a real
// peerswarm.Swarm) on loopback TCP, in a fresh data directory.
func newRealNode(t testing.TB) (*Server, string) {
	t.Helper()
	dir := t.TempDir()
	return newRealNodeAt(t, dir, swarmtest.Logger(t, slog.LevelWarn)), dir
}

// newRealNodeAt is newRealNode with its data directory and logger given.
func newRealNodeAt(t testing.TB, dir string, log *slog.Logger) *Server {
	t.Helper()
	return newRealNodeWith(t, dir, log, nil)
}

// newRealNodeWith is newRealNodeAt with its configuration changed by mod
// (nil: none).
func newRealNodeWith(t testing.TB, dir string, log *slog.Logger, mod func(*ServerConfig)) *Server {
	t.Helper()
	cfg := DefaultServerConfig()
	cfg.Key = testKey(1)
	cfg.Name = "node1"
	cfg.DataDir = dir
	cfg.PeerListen = "127.0.0.1:0"
	cfg.StatusInterval = 50 * time.Millisecond
	cfg.Swarm.StatusInterval = 50 * time.Millisecond
	cfg.Logger = log
	cfg.ListenAddr = "127.0.0.1:0"
	if mod != nil {
		mod(&cfg)
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		srv.Close()
		<-served
	})
	return srv
}

// mustDialNode dials the node at addr with the cluster key and tt's job,
// failing the test on error.
func mustDialNode(t testing.TB, addr string, tt *swarmtest.Torrent) *RemoteSwarm {
	t.Helper()
	r, err := Dial(context.Background(), addr, testKey(1), jobSpec(tt), testClientConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A node running the real local swarm downloads its lease from one of
// our own seeders, streams the pieces to the coordinator, and then
// uploads what it holds to another leecher.
func TestRealSwarmThroughNode(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 3<<20+777, 64<<10)
	n := tt.Info.NumPieces()
	seeder := newSeeder(t, tt)

	srv, dir := newRealNode(t)
	r := mustDialNode(t, srv.Addr().String(), tt)
	defer r.Close()
	if r.PeerAddr() == "" {
		t.Fatal("node reports no BitTorrent address")
	}
	r.AddPeers([]netip.AddrPort{addrPort(t, seeder.Addr())})
	r.Assign(allPieces(n))
	got, _ := collect(t, r, tt, n, 30*time.Second)
	if len(got) != n {
		t.Fatalf("%d of %d pieces", len(got), n)
	}
	testenv.WaitFor(t, 5*time.Second, "node status", func() bool {
		st := r.Status()
		return st.Delivered == n && st.Downloaded >= tt.Info.Length
	})

	// The coordinator stored everything: the node advertises and uploads.
	r.Have(allPieces(n))
	st := swarmtest.NewStorage(tt.Info, nil)
	leecher := newDownload(t, swarmConfig(t, tt, st, 3))
	leecher.AddPeers([]netip.AddrPort{netip.MustParseAddrPort(r.PeerAddr())})
	select {
	case <-leecher.Complete():
	case <-time.After(30 * time.Second):
		t.Fatalf("leecher did not complete from the node: %+v", leecher.Status())
	}
	if !bytes.Equal(st.Bytes(), tt.Data) {
		t.Fatal("leecher's data differs")
	}
	testenv.WaitFor(t, 5*time.Second, "node reports uploads", func() bool { return r.Status().Uploaded >= tt.Info.Length })

	r.Close()
	testenv.WaitFor(t, 5*time.Second, "job data removed", func() bool {
		ents, _ := os.ReadDir(dir)
		return len(ents) == 0 && srv.Stats().ActiveJobs == 0
	})
}

// The sub-chief drives a RemoteSwarm like its local swarm: it re-verifies
// the node's pieces and completes the download through it.
func TestSubChiefWithRemoteSwarm(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 2<<20, 64<<10)
	seeder := newSeeder(t, tt)

	srv, _ := newRealNode(t)
	st := swarmtest.NewStorage(tt.Info, nil)
	cfg := swarmConfig(t, tt, st, 2)
	cfg.MinLease = 4
	cfg.LeaseTimeout = 500 * time.Millisecond
	coord := newDownload(t, cfg) // its local swarm has no peers

	r := mustDialNode(t, srv.Addr().String(), tt)
	r.AddPeers([]netip.AddrPort{addrPort(t, seeder.Addr())})
	coord.AddWorker(r)
	select {
	case <-coord.Complete():
	case <-time.After(30 * time.Second):
		t.Fatalf("download through the node did not complete: %+v", coord.Status())
	}
	if !bytes.Equal(st.Bytes(), tt.Data) {
		t.Fatal("data differs")
	}
	// The coordinator's local swarm never had a peer: every byte came
	// through the node (and was re-hashed by the sub-chief).
	for _, w := range coord.Status().Workers {
		if w.Name == "local" && (w.Downloaded != 0 || w.Delivered != 0) {
			t.Fatalf("local swarm downloaded: %+v", w)
		}
	}
	testenv.WaitFor(t, 5*time.Second, "seeder reports its uploads to the node", func() bool {
		return seeder.Status().Uploaded >= tt.Info.Length
	})
}

// A node that returns corrupted pieces (claiming it verified them) is
// caught by the sub-chief's re-hash: nothing it sent is stored, and the
// sub-chief quarantines it (which closes the session).
func TestCorruptNodeQuarantined(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	f := &fakeFactory{tt: tt, corrupt: true}
	ts := newTestServerWith(t, transports[1], f, nil)
	st := swarmtest.NewStorage(tt.Info, nil)
	cfg := swarmConfig(t, tt, st, 2)
	cfg.MinLease = 4
	coord := newDownload(t, cfg)
	r := mustDial(t, ts, tt)
	coord.AddWorker(r)
	w := f.worker(t, 0)
	testenv.WaitFor(t, 10*time.Second, "sub-chief drops the node", func() bool {
		return errors.Is(r.Err(), ErrClosed) && ts.Stats().ActiveSessions == 0
	})
	if w.emitted.Load() == 0 {
		t.Fatal("the node delivered nothing")
	}
	if s := coord.Status(); s.Written != 0 || s.Verified != 0 {
		t.Fatalf("corrupt pieces accepted: %+v", s)
	}
	for _, b := range st.Have() {
		if b != 0 {
			t.Fatal("a corrupt piece reached storage")
		}
	}
}

// A coordinator that takes no pieces throttles the node's real swarm: it
// stops downloading once its in-flight budget is held by pieces that
// cannot be shipped, and resumes when the coordinator reads again.
func TestRealSwarmBackPressure(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 8<<20, 64<<10) // 128 pieces
	n := tt.Info.NumPieces()
	seeder := newSeeder(t, tt)

	dir := t.TempDir()
	cfg := DefaultServerConfig()
	cfg.Key, cfg.Name, cfg.DataDir, cfg.ListenAddr = testKey(1), "node1", dir, "127.0.0.1:0"
	cfg.StatusInterval = 20 * time.Millisecond
	cfg.Swarm.StatusInterval = 20 * time.Millisecond
	cfg.Swarm.MaxInFlightBytes = 4 * tt.Info.PieceLength
	cfg.Session.StreamWindow = 256 << 10
	cfg.Logger = swarmtest.Logger(t, slog.LevelWarn)
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	defer func() { srv.Close(); <-served }()

	cc := testClientConfig(t)
	cc.Session.StreamWindow = 256 << 10
	r, err := Dial(context.Background(), srv.Addr().String(), testKey(1), jobSpec(tt), cc)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.AddPeers([]netip.AddrPort{addrPort(t, seeder.Addr())})
	r.Assign(allPieces(n))
	delivered := waitStable(t, 20*time.Second, 500*time.Millisecond, func() int64 { return int64(r.Status().Delivered) })
	// Coordinator: 4 waiting + 1 per reader + a window (4 pieces) per
	// stream; node: 1 per shipper + 1 in the pump + the swarm's 4.
	bound := int64(4 + 2 + 2*5 + 2 + 1 + 4 + 1)
	t.Logf("node delivered %d of %d pieces while the coordinator took none (bound %d)", delivered, n, bound)
	if delivered > bound {
		t.Fatalf("node swarm delivered %d pieces with a stalled coordinator (bound %d)", delivered, bound)
	}
	got, _ := collect(t, r, tt, n, 30*time.Second)
	if len(got) != n {
		t.Fatalf("%d of %d pieces", len(got), n)
	}
}
