package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flotilla/internal/lab"
	"flotilla/internal/testenv"
	"flotilla/metainfo"
)

// TestDownloadFindsExistingData: `coord download` into a folder that
// already holds the data but no completion record checks the files first
// (saying so) instead of fetching everything again: with complete data it
// receives nothing; with the second half of the file damaged it receives
// only that half. Before the check, both runs downloaded every byte.
func TestDownloadFindsExistingData(t *testing.T) {
	l := newSwarmLab(t, lab.PayloadSpec{Name: "payload.bin", Seed: 23, Size: 8<<20 + 999}, 1<<18, 1)
	data, err := os.ReadFile(l.payload.Path)
	if err != nil {
		t.Fatal(err)
	}
	place := func(b []byte) string {
		out := t.TempDir()
		if err := os.WriteFile(filepath.Join(out, "payload.bin"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return out
	}

	t.Run("complete", func(t *testing.T) {
		out := place(data)
		p := startCoord(t, "download", l.torrent.Path, "--out", out, "--listen", "127.0.0.1:0", "--progress", "log")
		if code := p.wait(t, 2*time.Minute); code != 0 {
			t.Fatalf("exit %d:\n%s", code, p.out.String())
		}
		msg := p.out.String()
		if got := receivedBytes(t, msg); got != 0 {
			t.Fatalf("received %d bytes with the complete data already there:\n%s", got, msg)
		}
		n := l.info.Info.NumPieces()
		for _, want := range []string{"checking the data already under " + out, fmt.Sprintf("found %d of %d pieces already on disk (checked %d pieces in ", n, n, n)} {
			if !strings.Contains(msg, want) {
				t.Fatalf("output lacks %q:\n%s", want, msg)
			}
		}
		if err := l.payload.Verify(out); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("partial", func(t *testing.T) {
		b := append([]byte(nil), data...)
		half := int64(len(b)) / 2
		clear(b[half:])
		kept := int(half / l.info.Info.PieceLength)
		l.resumeFetchesOnlyMissing(t, place(b), kept)
	})
}

// TestManyFilesUnderUlimit: a real coord process under `ulimit -n 256`
// downloads a torrent of 2,000 files. Before the piece store kept a
// bounded cache of open files it needed a descriptor per file and failed
// at once with "open directory …/fNNNN.bin: too many open files".
func TestManyFilesUnderUlimit(t *testing.T) {
	testenv.Require(t, "sh")
	spec := lab.PayloadSpec{Name: "many"}
	for i := range 2000 {
		spec.Files = append(spec.Files, lab.FileSpec{Path: fmt.Sprintf("d%02d/f%04d.bin", i%40, i), Size: int64(1 + (i*7919)%6000)})
	}
	l := newSwarmLab(t, spec, 1<<15, 1)
	out := t.TempDir()
	p := startCoordCmd(t, exec.Command("sh", "-c", `ulimit -n 256 && exec "$@"`, "sh",
		coordBinary(t), "download", "--dht=false", l.torrent.Path, "--out", out, "--listen", "127.0.0.1:0", "--progress", "log"))
	if code := p.wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("exit %d under ulimit -n 256:\n%s", code, p.out.String())
	}
	if err := l.payload.Verify(out); err != nil {
		t.Fatalf("%v\n%s", err, p.out.String())
	}
}

// TestHugeTorrentRefusedCleanly: a 16 TiB torrent is refused before any
// file is created, with how much is needed and how much is free; with
// --sparse that is only a warning, and whatever happens next nothing is
// left behind if setup fails. Before, allocation failed and left a 0-byte
// file and .flotilla/ in the output directory.
func TestHugeTorrentRefusedCleanly(t *testing.T) {
	const size, pieceLen = 16 << 40, 256 << 20
	info := &metainfo.Info{Name: "huge.bin", PieceLength: pieceLen, Pieces: make([]byte, 20*(size/pieceLen)), Length: size,
		Files: []metainfo.File{{Path: []string{"huge.bin"}, Length: size}}}
	tor := &metainfo.Torrent{Info: info, InfoBytes: info.Encode(), Announce: "http://127.0.0.1:1/announce"}
	path := filepath.Join(t.TempDir(), "huge.torrent")
	if err := os.WriteFile(path, tor.Encode(), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	code, _, stderr := runCoord(t, "download", path, "--out", out, "--listen", "127.0.0.1:0", "--progress", "none")
	if code != 1 || !strings.Contains(stderr, "coord download: piecestore: "+out+": the torrent needs 16.0 TiB more and only ") ||
		!strings.Contains(stderr, " is free there (free some space or choose another output directory, then run again)") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if _, err := os.Lstat(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused download created %s (%v)", out, err)
	}

	// --sparse: a warning; the run is cut short (cancelled context).
	var o, e bytes.Buffer
	env := &cmdEnv{stdout: &o, stderr: &e, getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	code = run(ctx, env, []string{"download", "--dht=false", path, "--out", out, "--listen", "127.0.0.1:0", "--progress", "none", "--sparse"})
	if !strings.Contains(e.String(), "coord download: warning: the torrent needs 16.0 TiB more under "+out) {
		t.Fatalf("--sparse: exit %d, no warning:\n%s", code, e.String())
	}
	for _, name := range []string{"huge.bin", ".flotilla"} {
		if _, err := os.Lstat(filepath.Join(out, name)); code == 1 && !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("failed setup (%s) left %s behind", e.String(), name)
		}
	}
	t.Log(e.String())
}
