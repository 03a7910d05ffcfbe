package peerswarm

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"flotilla/internal/testenv"
	"flotilla/metainfo"
	"flotilla/swarm"
	"flotilla/swarm/swarmtest"
)

func addrOf(t testing.TB, d *testDownload) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(d.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

func TestSeederToLeecher(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 5<<20+12345, 256<<10)
	seeder := newTestSeeder(t, tt, 1)
	select {
	case <-seeder.Complete():
	default:
		t.Fatal("seeder with complete storage not complete")
	}

	st := swarmtest.NewStorage(tt.Info, nil)
	leechCfg := testConfig(tt, st, 2)
	leechCfg.Listener = listen(t, "127.0.0.1")
	leecher := newTestDownload(t, leechCfg)
	leecher.AddPeers([]netip.AddrPort{addrOf(t, seeder)})
	waitComplete(t, leecher, 20*time.Second)
	if !bytes.Equal(st.Bytes(), tt.Data) {
		t.Fatal("downloaded data differs")
	}
	s := leecher.Status()
	if !s.Complete || s.Written != s.Pieces || s.BytesDone != int64(len(tt.Data)) {
		t.Fatalf("status %+v", s)
	}
	// The byte counters are exact at completion (the local swarm's are
	// read live, not from its periodic snapshot): a summary printed then
	// counts every byte received.
	if up, down, left := leecher.Stats(); left != 0 || down < int64(len(tt.Data)) || up != 0 {
		t.Fatalf("at completion: uploaded %d, downloaded %d, left %d", up, down, left)
	}
	if s.Downloaded < int64(len(tt.Data)) {
		t.Fatalf("Status.Downloaded %d at completion, want >= %d", s.Downloaded, len(tt.Data))
	}
	if s.FirstRequest.IsZero() || s.FirstRequest.After(s.Updated) {
		t.Fatalf("FirstRequest %v (status of %v)", s.FirstRequest, s.Updated)
	}
	if s.FirstPeer.IsZero() || s.FirstPeer.After(s.FirstRequest) {
		t.Fatalf("FirstPeer %v, FirstRequest %v", s.FirstPeer, s.FirstRequest)
	}
	if len(s.Workers) != 1 || s.Workers[0].State != swarm.WorkerActive {
		t.Fatalf("workers %+v, want the local one active", s.Workers)
	}
	if st.Submits() != tt.Info.NumPieces() {
		t.Fatalf("%d submits for %d pieces", st.Submits(), tt.Info.NumPieces())
	}
}

// Close in the middle of a transfer returns promptly and leaks nothing
// (goleak checks at the end of the package).
func TestCloseMidDownload(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 32<<20, 256<<10)
	seedCfg := testConfig(tt, swarmtest.NewStorage(tt.Info, tt.Data), 1)
	seedCfg.Listener = listen(t, "127.0.0.1")
	seedCfg.Seed = true
	seeder, err := startDownload(seedCfg)
	if err != nil {
		t.Fatal(err)
	}
	st := swarmtest.NewStorage(tt.Info, nil)
	cfg := testConfig(tt, st, 2)
	cfg.MaxPipeline = 8
	cfg.StartPipeline = 8
	// A fast machine fetched all 32 MiB over loopback before Close: the
	// disk now takes a few pieces and then hangs until Close, so the
	// download is still unfinished (and a Submit blocked) when it closes.
	cfg.Storage = &stallingStorage{Storage: st, left: 4}
	leecher, err := startDownload(cfg)
	if err != nil {
		t.Fatal(err)
	}
	leecher.AddPeers([]netip.AddrPort{addrOf(t, seeder)})
	testenv.WaitFor(t, 10*time.Second, "a first piece", func() bool { return leecher.Status().Written > 0 })
	done := make(chan struct{})
	go func() {
		leecher.Close()
		seeder.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung")
	}
	if s := leecher.Status(); s.Complete || s.Err != nil {
		t.Fatalf("status after close: complete %v err %v", s.Complete, s.Err)
	}
	select {
	case <-leecher.Complete():
		t.Fatal("Complete closed after Close of an unfinished download")
	default:
	}
}

// stallingStorage takes left pieces, then blocks every Submit until its
// context ends.
type stallingStorage struct {
	*swarmtest.Storage
	mu   sync.Mutex
	left int
}

func (g *stallingStorage) Submit(ctx context.Context, p int, data []byte) error {
	g.mu.Lock()
	g.left--
	stall := g.left < 0
	g.mu.Unlock()
	if stall {
		<-ctx.Done()
		return ctx.Err()
	}
	return g.Storage.Submit(ctx, p, data)
}

func TestConfigValidate(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 64<<10, 16<<10)
	good := testConfig(tt, swarmtest.NewStorage(tt.Info, nil), 1)
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*swarm.Config){
		"no info":      func(c *swarm.Config) { c.Info = nil },
		"no storage":   func(c *swarm.Config) { c.Storage = nil },
		"no peers":     func(c *swarm.Config) { c.MaxPeers = 0 },
		"pipeline":     func(c *swarm.Config) { c.MaxPipeline = c.MinPipeline - 1 },
		"inflight":     func(c *swarm.Config) { c.MaxInFlightBytes = 1 },
		"timeout":      func(c *swarm.Config) { c.RequestTimeout = 0 },
		"lease":        func(c *swarm.Config) { c.MinLease = 0 },
		"upload slots": func(c *swarm.Config) { c.UploadSlots = 0 },
	} {
		c := good
		mut(&c)
		if err := c.Validate(); !errors.Is(err, swarm.ErrConfig) {
			t.Errorf("%s: got %v, want swarm.ErrConfig", name, err)
		}
		if _, err := startDownload(c); err == nil {
			t.Errorf("%s: New accepted an invalid config", name)
		}
	}
}

// Close does not wait for a peer stuck in its handshake.
func TestCloseDuringHandshake(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 64<<10, 16<<10)
	cfg := testConfig(tt, swarmtest.NewStorage(tt.Info, nil), 1)
	cfg.Listener = listen(t, "127.0.0.1")
	cfg.HandshakeTimeout = time.Minute
	cfg.DialTimeout = time.Minute
	d, err := startDownload(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// An incoming connection that never sends its handshake, and an
	// outgoing one to a listener that never answers.
	in, err := net.Dial("tcp", d.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	mute := listen(t, "127.0.0.1")
	defer mute.Close()
	d.AddPeers([]netip.AddrPort{netip.MustParseAddrPort(mute.Addr().String())})
	c, err := mute.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	d.Close()
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Close took %v", took)
	}
}

// A multi-file torrent with awkward geometry (a piece spanning three
// files, a zero-length file, nested directories, a short last piece)
// downloaded into a real piece store.
func TestMultiFileIntoPieceStore(t *testing.T) {
	files := []metainfo.File{
		{Path: []string{"a", "one.bin"}, Length: 40000},
		{Path: []string{"a", "b", "two.bin"}, Length: 10000},
		{Path: []string{"empty"}, Length: 0},
		{Path: []string{"c", "three.bin"}, Length: 50000},
		{Path: []string{"last.bin"}, Length: 777},
	}
	var total int64
	for _, f := range files {
		total += f.Length
	}
	data := swarmtest.NewTorrent(t, int(total), 16<<10).Data // reuse its random bytes
	raw, err := metainfo.Build("multi", files, 32<<10, nil, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tor, err := metainfo.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	tt := &swarmtest.Torrent{Torrent: tor, Data: data}
	seeder := newTestSeeder(t, tt, 1)

	out := t.TempDir()
	st := openStore(t, out, tor)
	leecher := newTestDownload(t, testConfig(tt, st, 2))
	leecher.AddPeers([]netip.AddrPort{addrOf(t, seeder)})
	waitComplete(t, leecher, 20*time.Second)
	leecher.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	var off int64
	for i, f := range tor.Info.Files {
		got, err := os.ReadFile(filepath.Join(out, tor.Info.FilePath(i)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data[off:off+f.Length]) {
			t.Fatalf("file %s differs", tor.Info.FilePath(i))
		}
		off += f.Length
	}
}
