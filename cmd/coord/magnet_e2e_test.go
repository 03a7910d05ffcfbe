package main

import (
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flotilla/internal/lab"
	"flotilla/internal/testenv"
	"flotilla/metainfo"
	"flotilla/service"
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
	// The same command again uses the saved .torrent and finds the data done.
	again := startCoord(t, "download", magnet, "--out", out, "--listen", "127.0.0.1:0", "--progress", "none")
	if code := again.wait(t, time.Minute); code != 0 || strings.Contains(again.out.String(), "fetching") ||
		receivedBytes(t, again.out.String()) != 0 {
		t.Fatalf("second run: exit %d:\n%s", code, again.out.String())
	}
}

// TestMagnetFromAria2RequireCrypto: a magnet download reaches aria2c
// seeders that take nothing but MSE with RC4, with --encryption require
// and with the default (prefer: plaintext first, then MSE, for the
// metadata; the download goes on over the same connections).
func TestMagnetFromAria2RequireCrypto(t *testing.T) {
	l := newSwarmLab(t, lab.PayloadSpec{Name: "payload.bin", Seed: 17, Size: 4<<20 + 99}, 1<<16, 2, aria2RequireCrypto...)
	for _, enc := range []string{"require", "prefer"} {
		out := t.TempDir()
		p := startCoord(t, "download", l.info.Magnet().String(), "--out", out, "--listen", "127.0.0.1:0",
			"--progress", "none", "--encryption", enc)
		if code := p.wait(t, 2*time.Minute); code != 0 {
			t.Fatalf("--encryption %s: exit %d:\n%s", enc, code, p.out.String())
		}
		if err := l.payload.Verify(out); err != nil {
			t.Fatalf("--encryption %s: %v\n%s", enc, err, p.out.String())
		}
	}
}

// TestAria2FetchesMetadataFromCoordSeed: aria2c given only the magnet link
// (with the tracker) gets the torrent's info from coord seed over
// ut_metadata, the only peer, then downloads the data from it.
func TestAria2FetchesMetadataFromCoordSeed(t *testing.T) {
	l := newSwarmLab(t, lab.PayloadSpec{Name: "payload.bin", Seed: 17, Size: 4<<20 + 321}, 1<<15, 0)
	s := l.seedWithCoord(t, "127.0.0.40")
	out := t.TempDir()
	args := append(lab.Aria2LeechArgs("127.0.0.41", testenv.FreePort(t, "127.0.0.41"), out, l.info.Magnet().String()),
		"--bt-save-metadata=true")
	b := l.aria2LeechFrom(t, s, out, args)
	saved, err := metainfo.Load(filepath.Join(out, hex.EncodeToString(l.info.InfoHash[:])+".torrent"))
	if err != nil || saved.InfoHash != l.info.InfoHash {
		t.Fatalf("aria2c's saved metadata: %v\naria2c:\n%s", err, b)
	}
}

// TestServeAcceptsMagnet: coord serve's API takes a magnet link; the job
// shows "fetching metadata", then downloads like any other.
func TestServeAcceptsMagnet(t *testing.T) {
	l := newSwarmLab(t, lab.PayloadSpec{Name: "payload.bin", Seed: 19, Size: 4<<20 + 55}, 1<<16, 1)
	s := startServe(t, t.TempDir())
	var in service.JobInfo
	if code := s.do(t, "POST", "/torrents?seed=false", []byte(l.info.Magnet().String()), &in); code != 201 ||
		in.State != service.StateFetchingMetadata {
		t.Fatalf("add magnet: %d %+v\n%s", code, in, s.out.String())
	}
	testenv.WaitFor(t, 2*time.Minute, "the magnet's job done", func() bool {
		var list struct{ Torrents []service.JobInfo }
		s.do(t, "GET", "/torrents", nil, &list)
		for _, j := range list.Torrents {
			if j.State == service.StateFailed {
				t.Fatalf("job failed: %+v\n%s", j, s.out.String())
			}
		}
		return len(list.Torrents) == 1 && list.Torrents[0].ID == in.ID && list.Torrents[0].State == service.StateDone
	})
	if err := l.payload.Verify(s.show(t, in.ID).DataDir); err != nil {
		t.Fatal(err)
	}
}
