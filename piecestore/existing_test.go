package piecestore

import (
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// TestOpenFindsExistingData: without a completion record, Open hashes the
// files already there that have the torrent's size and keeps the pieces
// that match; a file of another size is not trusted. Progress is reported.
// Before this check every piece was downloaded again.
func TestOpenFindsExistingData(t *testing.T) {
	// 1 KiB pieces: a = pieces 0-3, b = 4-7, c = 8-11 (all aligned).
	tt := newTorrent(t, "ex", 1024, fileSpec{"a", 4096}, fileSpec{"b", 4096}, fileSpec{"c", 4096})
	dir := t.TempDir()
	place := func(name string, data []byte) {
		p := filepath.Join(dir, "ex", name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	place("a", tt.data[0:4096])           // complete
	b := slices.Clone(tt.data[4096:8192]) // right size, piece 5 damaged
	b[1500] ^= 0xff
	place("b", b)
	place("c", tt.data[8192:8192+4000]) // short: not trusted
	var mu sync.Mutex
	var calls, last, total int
	cfg := testConfig(tt, dir, nil)
	cfg.CheckProgress = func(done, n int) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if done != last+1 {
			t.Errorf("progress went from %d to %d", last, done)
		}
		last, total = done, n
	}
	s := openStore(t, cfg, nil)
	want := []int{0, 1, 2, 3, 4, 6, 7}
	if got := haveList(s.Have(), s.NumPieces()); !slices.Equal(got, want) {
		t.Fatalf("Have after Open = %v, want %v", got, want)
	}
	if st := s.Stats(); st.CheckedAtOpen != 8 || calls != 8 || total != 8 {
		t.Fatalf("hashed %d pieces at Open, %d progress calls of %d; want 8", st.CheckedAtOpen, calls, total)
	}
	// Only the missing pieces need writing; then everything is there.
	for _, p := range []int{5, 8, 9, 10, 11} {
		submit(t, s, tt, p)
	}
	waitWritten(t, s, 5)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkFiles(t, tt, dir)
	// With the record now there, nothing is hashed again.
	s2 := openStore(t, cfg, nil)
	if !s2.Complete() || s2.Stats().CheckedAtOpen != 0 {
		t.Fatalf("reopen: complete %v, %d pieces hashed", s2.Complete(), s2.Stats().CheckedAtOpen)
	}
}
