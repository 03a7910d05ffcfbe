package swarm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"flotilla/metainfo"

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

// memStorage is an in-memory Storage for tests.
type memStorage struct {
	info    *metainfo.Info
	mu      sync.Mutex
	data    []byte
	have    []byte
	written chan int
	submits int
	err     error
}

func newMemStorage(info *metainfo.Info, data []byte, complete bool) *memStorage {
	n := info.NumPieces()
	m := &memStorage{info: info, data: make([]byte, info.Length), have: make([]byte, (n+7)/8), written: make(chan int, n)}
	if complete {
		copy(m.data, data)
		for i := 0; i < n; i++ {
			m.have[i/8] |= 0x80 >> (i % 8)
		}
	}
	return m
}

func (m *memStorage) Have() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.have)
}

func (m *memStorage) Submit(ctx context.Context, p int, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	if int64(len(data)) != m.info.PieceLen(p) {
		return errors.New("memStorage: wrong piece length")
	}
	if m.have[p/8]&(0x80>>(p%8)) != 0 {
		return nil
	}
	m.submits++
	copy(m.data[m.info.PieceOffset(p):], data)
	m.have[p/8] |= 0x80 >> (p % 8)
	m.written <- p
	return nil
}

func (m *memStorage) Written() <-chan int { return m.written }

func (m *memStorage) ReadBlock(p int, begin int64, buf []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.have[p/8]&(0x80>>(p%8)) == 0 {
		return 0, errors.New("memStorage: piece not complete")
	}
	off := m.info.PieceOffset(p) + begin
	return copy(buf, m.data[off:off+int64(len(buf))]), nil
}

func (m *memStorage) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

func (m *memStorage) bytes() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.data)
}

// testTorrent is a random payload and its torrent.
type testTorrent struct {
	raw  []byte // .torrent file
	t    *metainfo.Torrent
	data []byte
}

func makeTorrent(t testing.TB, size int, pieceLen int64, trackers ...string) *testTorrent {
	t.Helper()
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(uint64(size), uint64(pieceLen)))
	for i := 0; i+8 <= len(data); i += 8 {
		v := r.Uint64()
		for k := range 8 {
			data[i+k] = byte(v >> (8 * k))
		}
	}
	var tiers [][]string
	if len(trackers) > 0 {
		tiers = [][]string{trackers}
	}
	raw, err := metainfo.Build("payload.bin", []metainfo.File{{Length: int64(size)}}, pieceLen, tiers, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tor, err := metainfo.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return &testTorrent{raw: raw, t: tor, data: data}
}

func testConfig(tt *testTorrent, st Storage, id byte) Config {
	cfg := DefaultConfig()
	cfg.Info = tt.t.Info
	cfg.InfoHash = tt.t.InfoHash
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

func newTestDownload(t testing.TB, cfg Config) *Download {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func waitComplete(t testing.TB, d *Download, timeout time.Duration) {
	t.Helper()
	select {
	case <-d.Complete():
	case <-time.After(timeout):
		st := d.Status()
		t.Fatalf("download not complete after %v: %+v", timeout, st)
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// testLogger logs through t at Info level (Debug with -v and FLOTILLA_DEBUG=1).
func testLogger(t testing.TB) *slog.Logger {
	lvl := slog.LevelInfo
	if os.Getenv("FLOTILLA_DEBUG") != "" {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: lvl}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
