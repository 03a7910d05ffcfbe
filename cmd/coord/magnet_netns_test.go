package main

import (
	"testing"

	"flotilla/metainfo"
)

// TestMagnetFromTransmissionSeeder: the torrent's info comes from a
// transmission seeder over ut_metadata, found through the magnet's tracker.
func TestMagnetFromTransmissionSeeder(t *testing.T) {
	l := newNetnsLab(t, 6<<20+4321)
	l.seedWithTransmission(t)
	l.downloadWithCoord(t, l.magnet(t), "--progress", "none")
}

// TestTransmissionFetchesMagnetFromCoordSeed: transmission given only the
// magnet link gets the info from coord seed, its only peer, and the data.
func TestTransmissionFetchesMagnetFromCoordSeed(t *testing.T) {
	l := newNetnsLab(t, 6<<20+4321)
	l.downloadWithTransmission(t, l.magnet(t), l.seedWithCoord(t))
}

// magnet is the lab torrent's magnet link.
func (l *netnsLab) magnet(t *testing.T) string {
	t.Helper()
	info, err := metainfo.Load(l.torrent.Path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Magnet().String()
}
