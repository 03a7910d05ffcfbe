package piecestore

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flotilla/internal/bitfield"
	"flotilla/internal/testenv"
	"flotilla/metainfo"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fileSpec describes one file of a test torrent: "a/b/c" and a length.
type fileSpec struct {
	path   string
	length int64
}

type testTorrent struct {
	info *metainfo.Info
	hash [20]byte
	data []byte // the torrent's concatenated content
}

// newTorrent builds a torrent with random content. A single spec with an
// empty path makes a single-file torrent called name.
func newTorrent(t testing.TB, name string, pieceLen int64, specs ...fileSpec) *testTorrent {
	t.Helper()
	var files []metainfo.File
	var total int64
	for _, s := range specs {
		var p []string
		if s.path != "" {
			p = strings.Split(s.path, "/")
		}
		files = append(files, metainfo.File{Path: p, Length: s.length})
		total += s.length
	}
	data := make([]byte, total)
	var seed [32]byte
	seed[0], seed[1] = byte(total), byte(pieceLen)
	rand.NewChaCha8(seed).Read(data)
	raw, err := metainfo.Build(name, files, pieceLen, nil, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("build torrent: %v", err)
	}
	tor, err := metainfo.Parse(raw)
	if err != nil {
		t.Fatalf("parse torrent: %v", err)
	}
	return &testTorrent{info: tor.Info, hash: tor.InfoHash, data: data}
}

func (tt *testTorrent) piece(p int) []byte {
	off := tt.info.PieceOffset(p)
	return tt.data[off : off+tt.info.PieceLen(p)]
}

// logBuffer collects log output for assertions.
type logBuffer = testenv.SyncBuffer

func testConfig(tt *testTorrent, dir string, logs *logBuffer) Config {
	cfg := DefaultConfig()
	cfg.Dir = dir
	cfg.Info = tt.info
	cfg.InfoHash = tt.hash
	cfg.SyncInterval = 20 * time.Millisecond
	if logs != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	return cfg
}

// openStore opens a store and closes it at cleanup (Close is idempotent).
func openStore(t testing.TB, cfg Config, h *hooks) *Store {
	t.Helper()
	hk := defaultHooks()
	if h != nil {
		hk = *h
	}
	s, err := open(cfg, hk)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// submit hands piece p (a pooled copy) to s.
func submit(t testing.TB, s *Store, tt *testTorrent, p int) {
	t.Helper()
	b := s.GetBuffer(p)
	copy(b, tt.piece(p))
	if err := s.Submit(context.Background(), p, b); err != nil {
		t.Fatalf("submit %d: %v", p, err)
	}
}

// waitWritten collects n pieces from Written.
func waitWritten(t testing.TB, s *Store, n int) []int {
	t.Helper()
	var got []int
	deadline := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case p, ok := <-s.Written():
			if !ok {
				t.Fatalf("Written closed after %d of %d pieces", len(got), n)
			}
			got = append(got, p)
		case <-deadline:
			t.Fatalf("only %d of %d pieces written (err %v)", len(got), n, s.Err())
		}
	}
	return got
}

// checkFiles compares every file on disk with the torrent's content.
func checkFiles(t testing.TB, tt *testTorrent, dir string) {
	t.Helper()
	for i, f := range tt.info.Files {
		got, err := os.ReadFile(filepath.Join(dir, tt.info.FilePath(i)))
		if err != nil {
			t.Fatalf("read file %d: %v", i, err)
		}
		if want := tt.data[f.Offset : f.Offset+f.Length]; !bytes.Equal(got, want) {
			t.Fatalf("file %s differs from the torrent's content", tt.info.FilePath(i))
		}
	}
}

func haveList(b []byte, n int) []int {
	var out []int
	for p := range n {
		if bitfield.Bitfield(b).Has(p) {
			out = append(out, p)
		}
	}
	return out
}
