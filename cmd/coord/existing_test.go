package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flotilla/internal/lab"
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
		for _, want := range []string{"checking the data already under " + out, fmt.Sprintf("found %d of %d pieces already on disk", n, n)} {
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
