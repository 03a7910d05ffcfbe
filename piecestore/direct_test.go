package piecestore

import (
	"bytes"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"flotilla/internal/directio"
)

// dioSupported reports whether the file system holding dir does direct
// I/O (statx reports an alignment), so that tests know whether DirectIO
// must have taken effect.
func dioSupported(t *testing.T, dir string) bool {
	t.Helper()
	f, err := os.CreateTemp(dir, "dio-probe")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	dfd, _ := directio.Open(int(f.Fd()))
	if dfd < 0 {
		return false
	}
	unix.Close(dfd)
	return true
}

// TestDirectIOSplitsRuns writes a multi-file torrent whose file boundaries
// fall inside pieces (so a run's parts start and end unaligned) with
// DirectIO on: every byte must land where it belongs, the aligned middles
// go through the O_DIRECT descriptor, heads and tails through the buffered
// one, and every direct write is aligned in offset, length and memory.
func TestDirectIOSplitsRuns(t *testing.T) {
	const pl = 64 << 10
	tt := newTorrent(t, "dio", pl,
		fileSpec{"a.bin", 3*pl + 1234}, // ends inside piece 3
		fileSpec{"b/c.bin", 5 * pl},    // starts and ends unaligned
		fileSpec{"d.bin", 10*pl + 7},   // unaligned start, short last piece
	)
	dir := t.TempDir()
	direct := dioSupported(t, dir)
	if !direct {
		t.Logf("the file system of %s does no direct I/O: checking the buffered fallback only", dir)
	}
	cfg := testConfig(tt, dir, nil)
	cfg.DirectIO = true
	h := defaultHooks()
	var mu sync.Mutex
	var dfds map[int]bool
	var bad []string
	h.pwritev = func(fd int, iovs [][]byte, off int64) (int, error) {
		mu.Lock()
		if dfds[fd] {
			if off%4096 != 0 {
				bad = append(bad, "offset")
			}
			for _, b := range iovs {
				if len(b)%4096 != 0 || uintptrOf(b)%4096 != 0 {
					bad = append(bad, "buffer")
				}
			}
		}
		mu.Unlock()
		return unix.Pwritev(fd, iovs, off)
	}
	s := openStore(t, cfg, &h)
	mu.Lock()
	dfds = map[int]bool{}
	for _, fd := range s.testDFDs {
		if fd >= 0 {
			dfds[fd] = true
		}
	}
	mu.Unlock()
	if direct && len(dfds) != 3 {
		t.Fatalf("%d direct descriptors for 3 files", len(dfds))
	}
	n := s.NumPieces()
	for _, p := range rand.Perm(n) {
		submit(t, s, tt, p)
	}
	waitWritten(t, s, n)
	st := s.Stats()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkFiles(t, tt, dir)
	if len(bad) > 0 {
		t.Fatalf("unaligned direct writes: %v", bad)
	}
	if direct && st.DirectBytes == 0 {
		t.Fatal("DirectIO on a file system that supports it wrote nothing directly")
	}
	if st.DirectBytes >= st.BytesWritten && st.BytesWritten > 0 {
		t.Fatalf("all %d bytes direct, yet the files' edges are unaligned", st.BytesWritten)
	}
	t.Logf("%d of %d bytes written with O_DIRECT", st.DirectBytes, st.BytesWritten)

	// The record holds: a new store sees every piece, and the data reads
	// back through the ordinary descriptors.
	s2 := openStore(t, cfg, nil)
	if !s2.Complete() {
		t.Fatalf("reopened store has %d of %d pieces", len(haveList(s2.Have(), n)), n)
	}
	for p := range n {
		b, err := s2.ReadPiece(p, nil)
		if err != nil || !bytes.Equal(b, tt.piece(p)) {
			t.Fatalf("ReadPiece(%d) after reopen: %v", p, err)
		}
	}
}

// TestDirectIOOffWritesBuffered: without DirectIO no second descriptor is
// opened.
func TestDirectIOOffWritesBuffered(t *testing.T) {
	tt := newTorrent(t, "buf", 64<<10, fileSpec{"", 8 << 16})
	s := openStore(t, testConfig(tt, t.TempDir(), nil), nil)
	for p := range s.NumPieces() {
		submit(t, s, tt, p)
	}
	waitWritten(t, s, s.NumPieces())
	if st := s.Stats(); st.DirectBytes != 0 {
		t.Fatalf("DirectBytes = %d with DirectIO off", st.DirectBytes)
	}
	for _, fd := range s.testDFDs {
		if fd >= 0 {
			t.Fatal("a direct descriptor was opened with DirectIO off")
		}
	}
}

func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
