package piecestore

import (
	"bytes"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"flotilla/metainfo"
)

// buildTorrent makes a test torrent from metainfo files (attributes and
// symlink targets included); pad entries get zeros.
func buildTorrent(t *testing.T, name string, pieceLen int64, files []metainfo.File) *testTorrent {
	t.Helper()
	var data []byte
	for _, f := range files {
		b := make([]byte, f.Length)
		if !f.IsPad() {
			rand.NewChaCha8([32]byte{byte(len(data))}).Read(b)
		}
		data = append(data, b...)
	}
	raw, err := metainfo.Build(name, files, pieceLen, nil, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tor, err := metainfo.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return &testTorrent{info: tor.Info, hash: tor.InfoHash, data: data}
}

// leftovers lists what is under dir (relative paths), for "nothing left
// behind" checks.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	var got []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if p != dir && err == nil {
			rel, _ := filepath.Rel(dir, p)
			got = append(got, rel)
		}
		return nil
	})
	return got
}

// TestPaddingAndSymlinkEntries: a BitComet "_____padding_file_" entry is
// not written to disk; a BEP 47 symlink entry becomes a symlink (relative,
// inside the output directory) rather than a regular file; the data reads
// back through the store and the link, and a second Open accepts the link
// it made. Before, both entries were created as regular files.
func TestPaddingAndSymlinkEntries(t *testing.T) {
	pad := "_____padding_file_0_if you see this file, please update to BitComet 0.85 or above____"
	tt := buildTorrent(t, "t", 256, []metainfo.File{
		{Path: []string{"a.bin"}, Length: 300},
		{Path: []string{pad}, Length: 212},
		{Path: []string{"b.bin"}, Length: 400},
		{Path: []string{"sub", "link"}, Attr: "l", SymlinkPath: []string{"a.bin"}},
	})
	dir := t.TempDir()
	cfg := testConfig(tt, dir, nil)
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
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "t", pad)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the padding entry is on disk (%v)", err)
	}
	link := filepath.Join(dir, "t", "sub", "link")
	if target, err := os.Readlink(link); err != nil || target != "../a.bin" {
		t.Fatalf("symlink entry: Readlink = %q, %v; want ../a.bin", target, err)
	}
	if b, err := os.ReadFile(link); err != nil || !bytes.Equal(b, tt.data[:300]) {
		t.Fatalf("reading through the link: %v", err)
	}
	s2 := openStore(t, cfg, nil)
	if !s2.Complete() {
		t.Fatal("reopened store is not complete")
	}
}

// TestSymlinkOutsideRefused: a symlink entry whose target leaves the
// output directory is refused with a message naming it, and nothing is
// left on disk.
func TestSymlinkOutsideRefused(t *testing.T) {
	for _, target := range [][]string{{"..", "..", "etc", "passwd"}, {"..", "..", "..", ".."}, {"..", ".flotilla"}} {
		tt := buildTorrent(t, "t", 256, []metainfo.File{
			{Path: []string{"a.bin"}, Length: 300},
			{Path: []string{"evil"}, Attr: "l", SymlinkPath: target},
		})
		dir := filepath.Join(t.TempDir(), "out")
		_, err := Open(testConfig(tt, dir, nil))
		if !errors.Is(err, ErrUnsafeLink) || !strings.Contains(err.Error(), "refusing to create it") {
			t.Fatalf("symlink to %v: Open = %v; want a clear refusal", target, err)
		}
		if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("refused Open left %v behind", leftovers(t, dir))
		}
	}
}

// TestFailedOpenCleansUp: when Open fails part-way, what it created
// (files, directories, .flotilla/) is removed and what was there before is
// kept. Before, the files and the record stayed behind.
func TestFailedOpenCleansUp(t *testing.T) {
	tt := newTorrent(t, "t", 256, fileSpec{"a/x", 300}, fileSpec{"b", 200}, fileSpec{"c", 100})
	dir := t.TempDir()
	// The user's own file, and a directory where the torrent wants "b".
	os.MkdirAll(filepath.Join(dir, "t", "b"), 0o755)
	os.WriteFile(filepath.Join(dir, "t", "keep.txt"), []byte("mine"), 0o644)
	_, err := Open(testConfig(tt, dir, nil))
	if !errors.Is(err, ErrUnsafePath) {
		t.Fatalf("Open = %v; want ErrUnsafePath for the directory in the way", err)
	}
	got := strings.Join(leftovers(t, dir), " ")
	if got != "t t/b t/keep.txt" {
		t.Fatalf("after the failed Open: %q; want only what was there before", got)
	}
}

// TestHugeTorrentRefusedCleanly: a 16 TiB torrent is refused before
// anything is created, saying how much is needed and how much is free;
// with sparse files it is only a warning, and if the file system cannot
// hold such a file either, nothing is left behind.
func TestHugeTorrentRefusedCleanly(t *testing.T) {
	const size = 16 << 40
	const pieceLen = 256 << 20
	info := &metainfo.Info{Name: "huge", PieceLength: pieceLen, Pieces: make([]byte, 20*(size/pieceLen)), Length: size + 5,
		MultiFile: true, Files: []metainfo.File{{Path: []string{"huge.bin"}, Length: size}, {Path: []string{"tail"}, Length: 5, Offset: size}}}
	info.Pieces = append(info.Pieces, make([]byte, 20)...)
	dir := filepath.Join(t.TempDir(), "out")
	cfg := DefaultConfig()
	cfg.Dir, cfg.Info, cfg.Preallocate = dir, info, true
	_, err := Open(cfg)
	var se *SpaceError
	if !errors.As(err, &se) || !errors.Is(err, ErrNoSpace) ||
		!strings.Contains(err.Error(), "needs 16.0 TiB more and only ") ||
		!strings.Contains(err.Error(), "is free there (free some space or choose another output directory, then run again)") {
		t.Fatalf("Open = %v; want the space needed and free", err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("refused Open left %v behind", leftovers(t, dir))
	}
	t.Log(err)

	logs := &logBuffer{}
	cfg.Preallocate = false
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	s, err := Open(cfg)
	if !strings.Contains(logs.String(), "not enough free space") {
		t.Fatalf("sparse: no warning about the space; logs: %s", logs)
	}
	if err == nil {
		s.Close() // the file system holds a 16 TiB sparse file
		return
	}
	if _, serr := os.Lstat(dir); !errors.Is(serr, os.ErrNotExist) {
		t.Fatalf("failed Open (%v) left %v behind", err, leftovers(t, dir))
	}
	t.Logf("sparse: %v", err)
}
