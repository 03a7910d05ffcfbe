package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flotilla/internal/lab"
	"flotilla/metainfo"
)

// TestMagnetFromAria2Seeders: coord download given only a magnet link
// fetches the torrent's info from aria2c seeders found through the
// magnet's tracker, saves the .torrent beside the data and downloads it.
func TestMagnetFromAria2Seeders(t *testing.T) {
	l := newSwarmLab(t, lab.PayloadSpec{Name: "payload.bin", Seed: 13, Size: 8<<20 + 999}, 1<<16, 2)
	magnet := l.info.Magnet().String()
	out := t.TempDir()
	p := startCoord(t, "download", magnet, "--out", out, "--listen", "127.0.0.1:0", "--progress", "none")
	if code := p.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	if err := l.payload.Verify(out); err != nil {
		t.Fatalf("%v\n%s", err, p.out.String())
	}
	saved, err := metainfo.Load(filepath.Join(out, "payload.bin.torrent"))
	if err != nil || saved.InfoHash != l.info.InfoHash || saved.Announce != l.tracker.HTTPAnnounce {
		t.Fatalf("saved .torrent: %v %+v\n%s", err, saved, p.out.String())
	}
	if !strings.Contains(p.out.String(), "got the torrent's info") {
		t.Fatalf("no message about the metadata:\n%s", p.out.String())
	}
}
