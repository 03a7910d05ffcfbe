package piecestore

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"flotilla/internal/testenv"
)

// TestDiskFullInjected: a write fails with ENOSPC. Pieces written before it
// in the same plan are still recorded, the failing one is not, the store
// refuses more, and a reopen resumes and completes.
func TestDiskFullInjected(t *testing.T) {
	tt := newTorrent(t, "full", 1024, fileSpec{"one", 6 * 1024}, fileSpec{"two", 10 * 1024})
	dir := t.TempDir()
	g := newGate()
	h := g.hooks()
	gated := h.pwritev
	var two int                // descriptor of file "two", set once open
	const limit = 4*1024 + 512 // file "two" cannot grow past this
	h.pwritev = func(fd int, iovs [][]byte, off int64) (int, error) {
		n := int64(0)
		for _, b := range iovs {
			n += int64(len(b))
		}
		if fd != two || off+n <= limit {
			return gated(fd, iovs, off)
		}
		if off >= limit {
			return 0, syscall.ENOSPC
		}
		// A short write up to the limit first, like a real file system.
		var part [][]byte
		for room := limit - off; room > 0; iovs = iovs[1:] {
			b := iovs[0][:min(int64(len(iovs[0])), room)]
			part = append(part, b)
			room -= int64(len(b))
		}
		return gated(fd, part, off)
	}
	s := openStore(t, testConfig(tt, dir, nil), h)
	two = s.testFDs[1]
	submit(t, s, tt, 0)
	<-g.entered
	// Runs: [2 3] ok; [9 10 11] hits the limit inside piece 10 (at 4.5 KiB
	// of "two"): 9 is written, 10 and 11 are not.
	for _, p := range []int{11, 2, 3, 9, 10} {
		submit(t, s, tt, p)
	}
	close(g.release)
	go func() {
		for range g.entered {
		}
	}()
	testenv.WaitFor(t, 10*time.Second, "the sticky error", func() bool { return s.Err() != nil })
	err := s.Err()
	twoPath := filepath.Join(dir, "full", "two")
	if !errors.Is(err, ErrDiskFull) || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), twoPath) {
		t.Fatalf("Err() = %v; want ErrDiskFull and ENOSPC naming %s", err, twoPath)
	}
	var fe *FileError
	if !errors.As(err, &fe) || fe.Path != twoPath || fe.Op != "write" {
		t.Fatalf("not a FileError for %s: %#v", twoPath, err)
	}
	if e := s.Submit(context.Background(), 5, s.GetBuffer(5)); !errors.Is(e, ErrDiskFull) {
		t.Fatalf("Submit after disk full = %v", e)
	}
	if e := s.Close(); !errors.Is(e, ErrDiskFull) {
		t.Fatalf("Close = %v, want the disk-full error", e)
	}
	close(g.entered)
	var got []int
	for p := range s.Written() {
		got = append(got, p)
	}
	slices.Sort(got)
	if want := []int{0, 2, 3, 9}; !slices.Equal(got, want) {
		t.Fatalf("written = %v, want %v", got, want)
	}

	s2 := openStore(t, testConfig(tt, dir, nil), nil)
	if have := haveList(s2.Have(), s2.NumPieces()); !slices.Equal(have, got) {
		t.Fatalf("Have after reopen = %v, want %v", have, got)
	}
	for p := range s2.NumPieces() {
		submit(t, s2, tt, p)
	}
	waitWritten(t, s2, s2.NumPieces()-len(got))
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	checkFiles(t, tt, dir)
}

func remountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,size="+size, dir).CombinedOutput(); err != nil {
		t.Fatalf("remount tmpfs: %v: %s", err, out)
	}
}

// TestDiskFullTmpfs fills a real 1 MiB tmpfs with a 2 MiB torrent: a clear
// ENOSPC error naming the file, only durable pieces recorded, and after the
// file system grows a reopen resumes and completes.
func TestDiskFullTmpfs(t *testing.T) {
	dir := testenv.MountTmpfs(t, "1m")
	tt := newTorrent(t, "tf", 32<<10, fileSpec{"sub/one", 1 << 20}, fileSpec{"sub/two", 1<<20 + 100})
	cfg := testConfig(tt, filepath.Join(dir, "out"), nil)
	s := openStore(t, cfg, nil)
	n := s.NumPieces()
	var submitErr error
	for p := range n {
		b := s.GetBuffer(p)
		copy(b, tt.piece(p))
		if submitErr = s.Submit(context.Background(), p, b); submitErr != nil {
			break
		}
	}
	testenv.WaitFor(t, 10*time.Second, "disk full", func() bool { return s.Err() != nil })
	err := s.Err()
	if !errors.Is(err, ErrDiskFull) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Err() = %v, want disk full", err)
	}
	if !strings.Contains(err.Error(), filepath.Join(cfg.Dir, "tf", "sub")) {
		t.Fatalf("error does not name the file: %v", err)
	}
	t.Logf("error: %v", err)
	s.Close()
	var written []int
	for p := range s.Written() {
		written = append(written, p)
	}
	if len(written) == 0 || len(written) == n {
		t.Fatalf("%d of %d pieces recorded before the disk filled", len(written), n)
	}

	remountTmpfs(t, dir, "4m")
	s2 := openStore(t, cfg, nil)
	have := haveList(s2.Have(), n)
	slices.Sort(written)
	if !slices.Equal(have, written) {
		t.Fatalf("Have after reopen = %v, want %v", have, written)
	}
	for _, p := range have { // recorded pieces are really there
		if b, err := s2.ReadPiece(p, nil); err != nil || string(b) != string(tt.piece(p)) {
			t.Fatalf("recorded piece %d wrong on disk (%v)", p, err)
		}
	}
	for p := range n {
		submit(t, s2, tt, p)
	}
	waitWritten(t, s2, n-len(have))
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	checkFiles(t, tt, filepath.Join(dir, "out"))
}

// TestPreallocateDiskFull: with Preallocate, a torrent larger than the free
// space fails at Open before creating anything, saying how much is needed
// and how much is free.
func TestPreallocateDiskFull(t *testing.T) {
	dir := testenv.MountTmpfs(t, "1m")
	tt := newTorrent(t, "pa", 64<<10, fileSpec{"small", 100 << 10}, fileSpec{"large", 2 << 20})
	cfg := testConfig(tt, dir, nil)
	cfg.Preallocate = true
	_, err := Open(cfg)
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "needs 2.1 MiB more and only 1.0 MiB is free there") {
		t.Fatalf("Open = %v; want not enough space, with the figures", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("refused Open left %d entries behind in %s", len(ents), dir)
	}
	// With room, preallocation reserves real blocks.
	remountTmpfs(t, dir, "4m")
	s := openStore(t, cfg, nil)
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dir, "pa", "large"), &st); err != nil || st.Blocks*512 < 2<<20 {
		t.Fatalf("large has %d bytes allocated (%v), want >= 2 MiB", st.Blocks*512, err)
	}
	s.Close()
	if _, err := os.Stat(filepath.Join(dir, ".flotilla")); err != nil {
		t.Fatal(err)
	}
}

// TestSyncEIO: a failed fdatasync means the data may be gone; its pieces
// are never recorded, nothing later is either, and the error names the file.
func TestSyncEIO(t *testing.T) {
	tt := newTorrent(t, "eio", 64, fileSpec{"a", 640})
	dir := t.TempDir()
	var fail atomic.Bool
	h := defaultHooks()
	h.fdatasync = func(fd int) error {
		if fail.Load() {
			return syscall.EIO
		}
		return defaultHooks().fdatasync(fd)
	}
	s := openStore(t, testConfig(tt, dir, nil), &h)
	for p := range 3 {
		submit(t, s, tt, p)
	}
	waitWritten(t, s, 3)
	fail.Store(true)
	for p := 3; p < 6; p++ {
		submit(t, s, tt, p)
	}
	testenv.WaitFor(t, 10*time.Second, "the sync error", func() bool { return s.Err() != nil })
	err := s.Err()
	var fe *FileError
	if !errors.Is(err, ErrIO) || !errors.As(err, &fe) || fe.Op != "sync" || fe.Path != filepath.Join(dir, "eio", "a") {
		t.Fatalf("Err() = %v, want a sync ErrIO naming eio/a", err)
	}
	fail.Store(false) // even if syncs work again, nothing more is recorded
	s.Close()
	if got := haveList(s.Have(), s.NumPieces()); !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("Have = %v, want [0 1 2]", got)
	}
	s2 := openStore(t, testConfig(tt, dir, nil), nil)
	if got := haveList(s2.Have(), s2.NumPieces()); !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("Have after reopen = %v, want [0 1 2]", got)
	}
}
