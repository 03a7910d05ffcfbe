package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"flotilla/internal/testenv"
	"flotilla/metainfo"
)

// TestMagnetFromTransmissionSeeder: the torrent's info comes from a
// transmission seeder over ut_metadata, found through the magnet's tracker.
func TestMagnetFromTransmissionSeeder(t *testing.T) {
	l := newNetnsLab(t, 6<<20+4321)
	l.startTransmission(t, l.hosts["seed"], filepath.Dir(l.payload.Path))
	testenv.WaitFor(t, time.Minute, "transmission registered as a seeder", func() bool {
		s, err := l.tracker.ScrapeInfo(context.Background(), l.torrent.InfoHash)
		return err == nil && s.Complete >= 1
	})
	info, err := metainfo.Load(l.torrent.Path)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	client := l.hosts["client"]
	p := l.startCoordOn(t, client, "download", info.Magnet().String(), "--out", out,
		"--listen", client.IP()+":6881", "--progress", "none")
	if code := p.wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	if err := l.payload.Verify(out); err != nil {
		t.Fatal(err)
	}
}

// TestTransmissionFetchesMagnetFromCoordSeed: transmission given only the
// magnet link gets the info from coord seed, its only peer, and the data.
func TestTransmissionFetchesMagnetFromCoordSeed(t *testing.T) {
	l := newNetnsLab(t, 6<<20+4321)
	seed := l.hosts["seed"]
	s := l.startCoordOn(t, seed, "seed", l.torrent.Path, "--data", filepath.Dir(l.payload.Path),
		"--listen", seed.IP()+":6881", "--progress", "none")
	testenv.WaitFor(t, 30*time.Second, "coord seed registered as a seeder", func() bool {
		sc, err := l.tracker.ScrapeInfo(context.Background(), l.torrent.InfoHash)
		return err == nil && sc.Complete >= 1
	})
	info, err := metainfo.Load(l.torrent.Path)
	if err != nil {
		t.Fatal(err)
	}
	// startTransmission gives transmission l.torrent.Path: make it the magnet.
	tor := *l.torrent
	tor.Path = info.Magnet().String()
	l.torrent = &tor
	out := t.TempDir()
	tr := l.startTransmission(t, l.hosts["client"], out)
	testenv.WaitFor(t, 3*time.Minute, "transmission's copy complete and identical", func() bool {
		if tr.Exited() {
			t.Fatalf("transmission-cli exited: %s", tr.Tail(2000))
		}
		return l.payload.Complete(out) && l.payload.Verify(out) == nil
	})
	select {
	case <-s.done:
		t.Fatalf("coord seed exited:\n%s", s.out.String())
	default:
	}
}
