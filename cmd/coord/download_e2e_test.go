package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"flotilla/internal/lab"
	"flotilla/internal/testenv"
)

// TestInterruptDownloadAndResume: Ctrl-C on `coord download` part-way
// exits 130 saying how to resume, tells the tracker "stopped", keeps every
// piece written before the signal, and the same command then finishes
// without fetching those pieces again.
func TestInterruptDownloadAndResume(t *testing.T) {
	// One seeder capped at 4 MB/s makes the download take ~10 s.
	l := newSwarmLab(t, lab.PayloadSpec{Name: "payload.bin", Seed: 13, Size: 40 << 20}, 1<<18, 1, "--max-upload-limit=4M")
	ctx := context.Background()
	out := t.TempDir()
	p := startCoord(t, "download", l.torrent.Path, "--out", out, "--listen", "127.0.0.1:0",
		"--progress", "log", "--log-interval", "100ms")
	testenv.WaitFor(t, time.Minute, "a fifth downloaded and coord known to the tracker as a leecher", func() bool {
		select {
		case <-p.done:
			return true // fails below with the output
		default:
		}
		sc, err := l.tracker.ScrapeInfo(ctx, l.torrent.InfoHash)
		return err == nil && sc.Incomplete == 1 && lastPercent(p.out.String()) >= 20
	})
	// BytesDone counts written pieces, so the last progress line before
	// the signal is a lower bound on what the record must hold.
	shown := lastPercent(p.out.String())
	p.cmd.Process.Signal(os.Interrupt)
	code := p.wait(t, 30*time.Second)
	msg := p.out.String()
	if code != exitInterrupted || !strings.Contains(msg, "interrupted; run the same command to resume") {
		t.Fatalf("after SIGINT: exit %d, want %d and how to resume; output:\n%s", code, exitInterrupted, msg)
	}
	// The "stopped" announce went out before exit: the tracker no longer
	// counts coord as a leecher.
	sc, err := l.tracker.ScrapeInfo(ctx, l.torrent.InfoHash)
	if err != nil || sc.Incomplete != 0 {
		t.Fatalf("after SIGINT the tracker still lists %d leechers (%v); want 0: no \"stopped\" announce?\n%s", sc.Incomplete, err, msg)
	}
	n := l.info.Info.NumPieces()
	before := haveCount(t, l.info, out)
	atLeast := int((shown - 0.05) / 100 * float64(l.info.Info.Length) / float64(l.info.Info.PieceLength))
	if before < atLeast || before == n {
		t.Fatalf("record holds %d of %d pieces; the progress showed %.1f%% (>= %d pieces) before SIGINT, and the download was not done",
			before, n, shown, atLeast)
	}
	l.resumeFetchesOnlyMissing(t, out, before)
}

// TestDownloadThenSeed: `coord download --seed` keeps serving once done
// (aria2c, with the original seeder gone, downloads from it alone) and a
// SIGINT ends it with the interrupted status.
func TestDownloadThenSeed(t *testing.T) {
	l := newSwarmLab(t, lab.PayloadSpec{Name: "payload.bin", Seed: 17, Size: 24<<20 + 4321}, 1<<18, 0)
	ctx := context.Background()
	// The only seeder is ours, so that it can be stopped once coord has
	// the data.
	seedPort := testenv.FreePort(t, "127.0.0.21")
	origin := exec.Command("aria2c", lab.Aria2SeedArgs("127.0.0.21", seedPort, filepath.Dir(l.payload.Path), l.torrent.Path)...)
	origin.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	originLog := &syncBuffer{}
	origin.Stdout, origin.Stderr = originLog, originLog
	if err := origin.Start(); err != nil {
		t.Fatal(err)
	}
	originDone := make(chan struct{})
	go func() { origin.Wait(); close(originDone) }()
	stopOrigin := func() { origin.Process.Kill(); <-originDone }
	t.Cleanup(stopOrigin)
	testenv.WaitFor(t, 60*time.Second, "the origin seeder registered with the tracker", func() bool {
		sc, err := l.tracker.ScrapeInfo(ctx, l.torrent.InfoHash)
		return err == nil && sc.Complete >= 1
	})

	out := t.TempDir()
	coordPort := testenv.FreePort(t, "127.0.0.30")
	s := startCoord(t, "download", l.torrent.Path, "--seed", "--out", out,
		"--listen", "127.0.0.30:"+strconv.Itoa(coordPort), "--progress", "none")
	testenv.WaitFor(t, 2*time.Minute, "coord download --seed complete", func() bool {
		select {
		case <-s.done:
			return true // fails below with the output
		default:
		}
		return strings.Contains(s.out.String(), "seeding until interrupted")
	})
	select {
	case <-s.done:
		t.Fatalf("coord download --seed exited after completing:\n%s", s.out.String())
	default:
	}
	if err := l.payload.Verify(out); err != nil {
		t.Fatalf("coord's copy: %v\n%s", err, s.out.String())
	}
	stopOrigin()

	leechOut := t.TempDir()
	leech := exec.Command("aria2c", lab.Aria2LeechArgs("127.0.0.31", testenv.FreePort(t, "127.0.0.31"), leechOut, l.torrent.Path)...)
	leech.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	done := make(chan []byte, 1)
	go func() { b, _ := leech.CombinedOutput(); done <- b }()
	select {
	case b := <-done:
		if err := l.payload.Verify(leechOut); err != nil {
			t.Fatalf("aria2c's copy: %v\naria2c:\n%s\ncoord:\n%s", err, b, s.out.String())
		}
	case <-time.After(2 * time.Minute):
		leech.Process.Kill()
		<-done
		t.Fatalf("aria2c did not finish downloading from coord download --seed; coord:\n%s", s.out.String())
	}
	s.cmd.Process.Signal(os.Interrupt)
	if code := s.wait(t, 30*time.Second); code != exitInterrupted || !strings.Contains(s.out.String(), "interrupted") {
		t.Fatalf("after SIGINT: exit %d, output:\n%s", code, s.out.String())
	}
}

// TestDownloadVerifyRepairs: a byte changed in a completed download's file
// with its size and mtime kept is invisible to the completion record, whose
// per-file stamp still matches; `coord download --verify` re-hashes, finds
// the damaged piece and fetches exactly that piece again.
func TestDownloadVerifyRepairs(t *testing.T) {
	l := newSwarmLab(t, lab.PayloadSpec{Name: "payload.bin", Seed: 19, Size: 8<<20 + 100}, 1<<18, 1)
	out := t.TempDir()
	download := func(extra ...string) *coordProc {
		t.Helper()
		args := append([]string{"download", l.torrent.Path, "--out", out, "--listen", "127.0.0.1:0", "--progress", "none"}, extra...)
		p := startCoord(t, args...)
		if code := p.wait(t, 2*time.Minute); code != 0 {
			t.Fatalf("%v: exit %d:\n%s", args, code, p.out.String())
		}
		return p
	}
	download()
	if err := l.payload.Verify(out); err != nil {
		t.Fatal(err)
	}

	const piece = 5
	path := filepath.Join(out, "payload.bin")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	off := piece*l.info.Info.PieceLength + 1000
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}

	// Without --verify the record is trusted (the file's size and mtime
	// match its stamp): nothing is fetched and the damage stays. This is
	// what --verify is for.
	if got := receivedBytes(t, download().out.String()); got != 0 {
		t.Fatalf("without --verify: received %d bytes, want 0 (the record is trusted)", got)
	}
	if err := l.payload.Verify(out); err == nil {
		t.Fatal("without --verify the damaged byte was repaired; the test's premise (a trusted record) no longer holds")
	}

	p := download("--verify")
	if err := l.payload.Verify(out); err != nil {
		t.Fatalf("after --verify: %v\n%s", err, p.out.String())
	}
	if got, want := receivedBytes(t, p.out.String()), l.info.Info.PieceLength; got != want {
		t.Fatalf("--verify: received %d bytes, want exactly the damaged piece (%d)\n%s", got, want, p.out.String())
	}
	if n, all := haveCount(t, l.info, out), l.info.Info.NumPieces(); n != all {
		t.Fatalf("record holds %d of %d pieces after --verify", n, all)
	}
}
