package piecestore

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// The completion record across reopenings: kept, distrusted when the files
// changed, ignored when corrupt or for another torrent.

func TestResumeKeepsHave(t *testing.T) {
	tt := newTorrent(t, "multi", 64, fileSpec{"x/a", 300}, fileSpec{"x/b", 0}, fileSpec{"y", 333})
	dir := t.TempDir()
	cfg := testConfig(tt, dir, nil)
	cfg.SyncInterval = time.Hour // only Close syncs
	s := openStore(t, cfg, nil)
	n := s.NumPieces()
	var first []int
	for p := 0; p < n; p += 2 {
		submit(t, s, tt, p)
		first = append(first, p)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var got []int
	for p := range s.Written() {
		got = append(got, p)
	}
	slices.Sort(got)
	if !slices.Equal(got, first) {
		t.Fatalf("written before close = %v, want %v", got, first)
	}

	logs := &logBuffer{}
	s2 := openStore(t, testConfig(tt, dir, logs), nil)
	if have := haveList(s2.Have(), n); !slices.Equal(have, first) {
		t.Fatalf("Have after reopen = %v, want %v", have, first)
	}
	if st := s2.Stats(); st.Records != 0 {
		t.Fatalf("reopening an unchanged store rewrote the record")
	}
	for p := 1; p < n; p += 2 {
		submit(t, s2, tt, p)
	}
	submit(t, s2, tt, 0) // already complete: ignored
	waitWritten(t, s2, n-len(first))
	if !s2.Complete() {
		t.Fatal("not complete")
	}
	s2.Close()
	checkFiles(t, tt, dir)
	if logs.String() != "" {
		t.Fatalf("unexpected log output: %s", logs)
	}
}

func TestRecordThatLiesIsNotTrusted(t *testing.T) {
	tt := newTorrent(t, "lie", 100, fileSpec{"a", 250}, fileSpec{"b", 250}, fileSpec{"c", 250})
	dir := t.TempDir()
	s := openStore(t, testConfig(tt, dir, nil), nil)
	n := s.NumPieces() // 8 pieces: a=[0,250) b=[250,500) c=[500,750)
	for p := range n {
		submit(t, s, tt, p)
	}
	waitWritten(t, s, n)
	s.Close()

	// a: one byte changed (piece 1), mtime moves; b: truncated; c: untouched.
	pa := filepath.Join(dir, "lie", "a")
	f, err := os.OpenFile(pa, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{tt.data[150] ^ 0xff}, 150)
	f.Close()
	future := time.Now().Add(time.Hour)
	os.Chtimes(pa, future, future)
	if err := os.Truncate(filepath.Join(dir, "lie", "b"), 100); err != nil {
		t.Fatal(err)
	}

	logs := &logBuffer{}
	s2 := openStore(t, testConfig(tt, dir, logs), nil)
	// piece 1 is corrupt; pieces 2..4 touch b, whose tail is now zeros
	// (pieces 2 = a[200:250]+b[0:50] and 3 = b[50:150] survive: b kept 100 bytes).
	want := []int{0, 2, 5, 6, 7}
	if got := haveList(s2.Have(), n); !slices.Equal(got, want) {
		t.Fatalf("Have = %v, want %v", got, want)
	}
	if !bytes.Contains([]byte(logs.String()), []byte("re-verifying")) {
		t.Fatalf("no warning about re-verification: %q", logs)
	}
	if st, _ := os.Stat(filepath.Join(dir, "lie", "b")); st.Size() != 250 {
		t.Fatalf("b was not resized: %d", st.Size())
	}
	for _, p := range []int{1, 3, 4} {
		submit(t, s2, tt, p)
	}
	waitWritten(t, s2, 3)
	s2.Close()
	checkFiles(t, tt, dir)
	// The reconciled record is trusted as is next time.
	s3 := openStore(t, testConfig(tt, dir, nil), nil)
	if !s3.Complete() || s3.Stats().Records != 0 {
		t.Fatalf("complete %v, records %d", s3.Complete(), s3.Stats().Records)
	}
}

func TestCorruptRecordIgnored(t *testing.T) {
	tt := newTorrent(t, "cr", 32, fileSpec{"", 200})
	dir := t.TempDir()
	s := openStore(t, testConfig(tt, dir, nil), nil)
	for p := range s.NumPieces() {
		submit(t, s, tt, p)
	}
	waitWritten(t, s, s.NumPieces())
	s.Close()
	rp := filepath.Join(dir, ".flotilla", recordName(tt.hash))
	data, err := os.ReadFile(rp)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		mod  func([]byte) []byte
	}{
		{"flipped bits in both slots", func(b []byte) []byte {
			b = slices.Clone(b)
			b[len(b)/2-3] ^= 1
			b[len(b)-3] ^= 1
			return b
		}},
		{"truncated", func(b []byte) []byte { return b[:len(b)-7] }},
		{"garbage", func(b []byte) []byte { return bytes.Repeat([]byte{0xa5}, len(b)) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(rp, c.mod(data), 0o644); err != nil {
				t.Fatal(err)
			}
			logs := &logBuffer{}
			s := openStore(t, testConfig(tt, dir, logs), nil)
			// Not trusted: the data is hashed at Open (and found).
			if got := s.Stats().CheckedAtOpen; got != int64(s.NumPieces()) || !s.Complete() {
				t.Fatalf("%d of %d pieces hashed at Open with a corrupt record; complete %v", got, s.NumPieces(), s.Complete())
			}
			if !bytes.Contains([]byte(logs.String()), []byte("ignoring unusable completion record")) {
				t.Fatalf("no warning: %q", logs)
			}
			// Verify agrees and rebuilds the record.
			if err := s.Verify(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			if !s.Complete() {
				t.Fatal("Verify did not find the pieces")
			}
			s.Close()
			if err := os.WriteFile(rp, data, 0o644); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestRecordForOtherTorrentIgnored(t *testing.T) {
	tt := newTorrent(t, "o", 32, fileSpec{"", 200})
	dir := t.TempDir()
	s := openStore(t, testConfig(tt, dir, nil), nil)
	for p := range s.NumPieces() {
		submit(t, s, tt, p)
	}
	waitWritten(t, s, s.NumPieces())
	s.Close()
	// Same file name, different geometry inside: a record that was copied
	// from elsewhere or written by a bug.
	other := newTorrent(t, "o", 64, fileSpec{"", 200})
	other.hash = tt.hash
	logs := &logBuffer{}
	s2 := openStore(t, testConfig(other, t.TempDir(), logs), nil)
	s2.Close()
	rp := filepath.Join(dir, ".flotilla", recordName(tt.hash))
	b, _ := os.ReadFile(filepath.Join(s2.cfg.Dir, ".flotilla", recordName(tt.hash)))
	if err := os.WriteFile(rp, append(b, make([]byte, 2*slotSize(7, 1)-len(b))...)[:2*slotSize(7, 1)], 0o644); err != nil {
		t.Fatal(err)
	}
	// The record is ignored: the data on disk is hashed instead of trusted.
	s3 := openStore(t, testConfig(tt, dir, logs), nil)
	if got := s3.Stats().CheckedAtOpen; got != int64(s3.NumPieces()) {
		t.Fatalf("record of another geometry was trusted: %d of %d pieces hashed at Open", got, s3.NumPieces())
	}
}
