package piecestore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
)

// openDescriptors counts the process's open descriptors.
func openDescriptors(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("count descriptors: %v", err)
	}
	return len(ents)
}

// lowerFDLimit sets the soft RLIMIT_NOFILE of the test process to the
// descriptors open now plus extra, and restores it at cleanup.
func lowerFDLimit(t testing.TB, extra int) uint64 {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	lim := syscall.Rlimit{Cur: uint64(openDescriptors(t) + extra), Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
	return lim.Cur
}

func manyFiles(n int) []fileSpec {
	specs := make([]fileSpec, n)
	for i := range specs {
		specs[i] = fileSpec{fmt.Sprintf("d%d/f%04d.bin", i%7, i), int64(1 + (i*977)%5000)}
	}
	return specs
}

// TestManyFilesUnderLowFDLimit: a torrent of far more files than the
// process may open at once downloads, reads back and resumes, with the
// store's descriptors bounded by the cache (a quarter of the limit). Before
// the descriptor cache, Open failed with "too many open files".
func TestManyFilesUnderLowFDLimit(t *testing.T) {
	tt := newTorrent(t, "many", 16<<10, manyFiles(400)...)
	dir := t.TempDir()
	limit := lowerFDLimit(t, 48)
	for _, direct := range []bool{true, false} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) {
			dir := dir + fmt.Sprintf("/%v", direct)
			cfg := testConfig(tt, dir, nil)
			cfg.DirectIO = direct
			s := openStore(t, cfg, nil)
			n := s.NumPieces()
			for p := range n {
				submit(t, s, tt, p)
			}
			waitWritten(t, s, n)
			for p := range n {
				if b, err := s.ReadPiece(p, nil); err != nil || !bytes.Equal(b, tt.piece(p)) {
					t.Fatalf("ReadPiece(%d): %v", p, err)
				}
			}
			st := s.Stats()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			checkFiles(t, tt, dir)
			budget := int(limit / 4)
			if st.PeakOpenFiles > budget+4 {
				t.Fatalf("%d descriptors open at once; the budget is %d", st.PeakOpenFiles, budget)
			}
			t.Logf("limit %d: %d file opens, peak %d descriptors", limit, st.FileOpens, st.PeakOpenFiles)

			s2 := openStore(t, cfg, nil)
			if !s2.Complete() {
				t.Fatalf("reopened store has %d of %d pieces", s2.Stats().PiecesComplete, n)
			}
		})
	}
}

// TestOutOfDescriptorsIsClear: when the process has no descriptor left,
// Open fails with ErrNoDescriptors and a message that says what to do,
// never "open directory" for a file and never a stall.
func TestOutOfDescriptorsIsClear(t *testing.T) {
	tt := newTorrent(t, "nofd", 16<<10, manyFiles(40)...)
	cfg := testConfig(tt, t.TempDir(), nil)
	cfg.MaxOpenFiles = 1000               // the budget is not what stops it: the kernel is
	for extra := 0; extra <= 1; extra++ { // out at the record, at a directory
		t.Run(fmt.Sprint(extra), func(t *testing.T) {
			lowerFDLimit(t, extra)
			s, err := open(cfg, defaultHooks())
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded with no descriptors to spare")
			}
			msg := err.Error()
			if !errors.Is(err, ErrNoDescriptors) || !strings.Contains(msg, "ulimit -n") {
				t.Fatalf("Open: %v; want ErrNoDescriptors with a hint to raise ulimit -n", err)
			}
			var fe *FileError
			if errors.As(err, &fe) && fe.Op == "open directory" && strings.HasSuffix(fe.Path, ".bin") {
				t.Fatalf("Open: %v calls a file a directory", err)
			}
			t.Log(msg)
		})
	}
}
