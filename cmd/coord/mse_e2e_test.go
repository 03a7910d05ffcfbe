package main

import (
	"context"
	"testing"
	"time"

	"flotilla/internal/lab"
	"flotilla/internal/testenv"
)

// aria2RequireCrypto makes aria2c speak MSE with RC4 only, both ways.
var aria2RequireCrypto = []string{"--bt-require-crypto=true", "--bt-min-crypto-level=arc4"}

// TestDownloadEncryptedFromAria2: coord download --encryption require
// from aria2c seeders that accept nothing but MSE with RC4.
func TestDownloadEncryptedFromAria2(t *testing.T) {
	l := newSwarmLab(t, lab.PayloadSpec{Name: "payload.bin", Seed: 31, Size: 24<<20 + 777}, 1<<18, 2, aria2RequireCrypto...)
	out := t.TempDir()
	p := startCoord(t, "download", l.torrent.Path, "--out", out, "--listen", "127.0.0.1:0", "--progress", "log",
		"--encryption", "require")
	if code := p.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	if err := l.payload.Verify(out); err != nil {
		t.Fatalf("%v\n%s", err, p.out.String())
	}
}

// TestDownloadPreferFromAria2RequireCrypto: the default (prefer) reaches
// aria2c seeders that require encryption too.
func TestDownloadPreferFromAria2RequireCrypto(t *testing.T) {
	l := newSwarmLab(t, lab.PayloadSpec{Name: "payload.bin", Seed: 32, Size: 8<<20 + 5}, 1<<18, 1, aria2RequireCrypto...)
	out := t.TempDir()
	p := startCoord(t, "download", l.torrent.Path, "--out", out, "--listen", "127.0.0.1:0", "--progress", "none")
	if code := p.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	if err := l.payload.Verify(out); err != nil {
		t.Fatal(err)
	}
}

// TestSeedEncryptedToAria2: aria2c requiring MSE with RC4 downloads from
// coord seed --encryption require (the router answers its MSE handshake).
func TestSeedEncryptedToAria2(t *testing.T) {
	l := newSwarmLab(t, lab.PayloadSpec{Name: "payload.bin", Seed: 33, Size: 16<<20 + 999}, 1<<18, 0)
	s := l.seedWithCoord(t, "127.0.0.40", "--encryption", "require")
	out := t.TempDir()
	args := append(lab.Aria2LeechArgs("127.0.0.41", testenv.FreePort(t, "127.0.0.41"), out, l.torrent.Path), aria2RequireCrypto...)
	l.aria2LeechFrom(t, s, out, args)
}

// TestDownloadEncryptedFromTransmission: coord download --encryption
// require from a transmission seeder whose settings require encryption.
func TestDownloadEncryptedFromTransmission(t *testing.T) {
	l := newNetnsLab(t, 8<<20+4321)
	l.requireCrypto = true
	l.seedWithTransmission(t)
	l.downloadWithCoord(t, l.torrent.Path, "--progress", "log", "--encryption", "require")
}

// TestTransmissionDownloadsEncryptedFromCoordSeed: transmission requiring
// encryption downloads from coord seed --encryption require.
func TestTransmissionDownloadsEncryptedFromCoordSeed(t *testing.T) {
	l := newNetnsLab(t, 8<<20+4321)
	l.requireCrypto = true
	l.downloadWithTransmission(t, l.torrent.Path, l.seedWithCoord(t, "--encryption", "require"))
}

// BenchmarkMSEDownloadFromAria2 times coord download of 64 MiB from two
// aria2c seeders on loopback (which accept both), plaintext
// (--encryption off) against encrypted (require: MSE with RC4), one
// download per iteration into a fresh directory.
func BenchmarkMSEDownloadFromAria2(b *testing.B) {
	testenv.Require(b, "aria2c", "opentracker", "mktorrent")
	cl := &lab.Cleanup{}
	b.Cleanup(cl.Run)
	cfg := lab.DefaultSwarmConfig()
	cfg.Dir = b.TempDir()
	cfg.Seeders = 2
	sw, err := lab.StartSwarm(context.Background(), cl, cfg, lab.Loopback("127.0.0.1"), lab.LoopbackHosts(50, 2))
	if err != nil {
		b.Fatal(err)
	}
	for _, enc := range []string{"off", "require"} {
		b.Run(enc, func(b *testing.B) {
			b.SetBytes(cfg.Payload.Size)
			for b.Loop() {
				out := b.TempDir()
				p := startCoord(b, "download", sw.Torrent.Path, "--out", out, "--listen", "127.0.0.1:0",
					"--progress", "none", "--encryption", enc)
				if code := p.wait(b, 5*time.Minute); code != 0 {
					b.Fatalf("exit %d:\n%s", code, p.out.String())
				}
			}
		})
	}
}
