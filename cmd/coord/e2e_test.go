package main

import (
	"context"
	"crypto/sha1"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"flotilla/internal/bitfield"
	"flotilla/internal/lab"
	"flotilla/internal/testenv"
	"flotilla/metainfo"
	"flotilla/piecestore"
)

var (
	buildOnce sync.Once
	coordBin  string
	buildErr  error
)

// coordBinary builds the coord program once per test binary run.
func coordBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "coord-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		coordBin = filepath.Join(dir, "coord")
		out, err := exec.Command("go", "build", "-o", coordBin, "flotilla/cmd/coord").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return coordBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if coordBin != "" {
		os.RemoveAll(filepath.Dir(coordBin))
	}
	os.Exit(code)
}

// swarmLab is a payload, its torrent on a real opentracker and aria2c
// seeders on distinct loopback addresses.
type swarmLab struct {
	payload *lab.Payload
	torrent *lab.Torrent
	tracker *lab.Opentracker
	info    *metainfo.Torrent
}

// newSwarmLab starts opentracker and `seeders` aria2c seeders (with extra
// aria2c arguments, e.g. an upload limit) for a generated payload.
func newSwarmLab(t *testing.T, spec lab.PayloadSpec, piece int64, seeders int, extra ...string) *swarmLab {
	t.Helper()
	testenv.Require(t, "opentracker", "aria2c", "mktorrent")
	ctx := context.Background()
	cl := &lab.Cleanup{}
	t.Cleanup(cl.Run)
	dir := t.TempDir()
	p, err := lab.WritePayload(filepath.Join(dir, "data"), spec)
	if err != nil {
		t.Fatal(err)
	}
	// The info-hash does not depend on the trackers: learn it, whitelist
	// it, then write the torrent with the tracker's real URL.
	probe, err := lab.MakeTorrent(ctx, p, piece, [][]string{{"http://127.0.0.1:1/announce"}}, filepath.Join(dir, "probe.torrent"))
	if err != nil {
		t.Fatal(err)
	}
	ot, err := lab.StartOpentracker(ctx, cl, lab.Loopback("127.0.0.1"), filepath.Join(dir, "tracker"), probe.InfoHash)
	if err != nil {
		t.Fatal(err)
	}
	tor, err := lab.MakeTorrent(ctx, p, piece, [][]string{{ot.HTTPAnnounce}}, filepath.Join(dir, "t.torrent"))
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range lab.LoopbackHosts(20, seeders) {
		port, err := h.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		args := append(lab.Aria2SeedArgs(h.IP(), port, filepath.Dir(p.Path), tor.Path), extra...)
		if _, err := lab.StartProc(cl, fmt.Sprintf("seeder%d", i), h.Command(ctx, "aria2c", args...),
			filepath.Join(dir, fmt.Sprintf("seeder%d.log", i))); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 60*time.Second, "seeders registered with the tracker", func() bool {
		s, err := ot.ScrapeInfo(ctx, tor.InfoHash)
		return err == nil && s.Complete >= int64(seeders)
	})
	info, err := metainfo.Load(tor.Path)
	if err != nil {
		t.Fatal(err)
	}
	return &swarmLab{payload: p, torrent: tor, tracker: ot, info: info}
}

// coordProc is a running coord process.
type coordProc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

type syncBuffer = testenv.SyncBuffer

func startCoord(t testing.TB, args ...string) *coordProc {
	t.Helper()
	return startCoordCmd(t, exec.Command(coordBinary(t), noDHT(args)...))
}

// startCoordCmd starts a prepared coord command (for example one that
// enters a network namespace) with its output captured.
func startCoordCmd(t testing.TB, cmd *exec.Cmd) *coordProc {
	t.Helper()
	p := &coordProc{cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait waits for the process to exit and returns its exit code.
func (p *coordProc) wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("coord did not finish within %v; output:\n%s", timeout, p.out.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

// haveCount opens the piece store of a (stopped) download and checks that
// every piece it records as complete really is on disk, returning how many.
func haveCount(t *testing.T, tor *metainfo.Torrent, dir string) int {
	t.Helper()
	cfg := piecestore.DefaultConfig()
	cfg.Dir, cfg.Info, cfg.InfoHash = dir, tor.Info, tor.InfoHash
	st, err := piecestore.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	have := bitfield.Bitfield(st.Have())
	n := 0
	for p := 0; p < tor.Info.NumPieces(); p++ {
		if !have.Has(p) {
			continue
		}
		n++
		buf, err := st.ReadPiece(p, nil)
		if err != nil {
			t.Fatalf("piece %d recorded complete but unreadable: %v", p, err)
		}
		if h := sha1Sum(buf); h != tor.Info.PieceHash(p) {
			t.Fatalf("piece %d recorded complete but its data on disk is wrong", p)
		}
	}
	return n
}

func TestDownloadFromAria2Seeders(t *testing.T) {
	l := newSwarmLab(t, lab.PayloadSpec{Name: "payload.bin", Seed: 7, Size: 48<<20 + 12345}, 1<<18, 2)
	out := t.TempDir()
	p := startCoord(t, "download", l.torrent.Path, "--out", out, "--listen", "127.0.0.1:0", "--progress", "log")
	if code := p.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	if err := l.payload.Verify(out); err != nil {
		t.Fatalf("%v\n%s", err, p.out.String())
	}
	if !strings.Contains(p.out.String(), "downloaded payload.bin") {
		t.Fatalf("no completion message:\n%s", p.out.String())
	}
	// The same command again finds everything done and fetches nothing.
	again := startCoord(t, "download", l.torrent.Path, "--out", out, "--listen", "127.0.0.1:0", "--progress", "none")
	if code := again.wait(t, time.Minute); code != 0 || receivedBytes(t, again.out.String()) != 0 {
		t.Fatalf("second run: exit %d:\n%s", code, again.out.String())
	}
}

func TestMultiFileAwkwardGeometry(t *testing.T) {
	// 256 KiB pieces; one piece spans three files (two small ones in the
	// middle), a zero-length file, nested directories, a short last piece.
	spec := lab.PayloadSpec{Name: "tree", Seed: 9, Files: []lab.FileSpec{
		{Path: "a/first.bin", Size: 300 << 10},
		{Path: "a/b/tiny1", Size: 10 << 10},
		{Path: "a/b/empty", Size: 0},
		{Path: "a/b/tiny2", Size: 20 << 10},
		{Path: "c/d/e/last.bin", Size: 1<<20 + 777},
	}}
	l := newSwarmLab(t, spec, 1<<18, 1)
	out := t.TempDir()
	p := startCoord(t, "download", l.torrent.Path, "--out", out, "--listen", "127.0.0.1:0", "--progress", "none")
	if code := p.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	if err := l.payload.Verify(out); err != nil {
		t.Fatalf("%v\n%s", err, p.out.String())
	}
	if fi, err := os.Stat(filepath.Join(out, "tree", "a", "b", "empty")); err != nil || fi.Size() != 0 {
		t.Fatalf("zero-length file: %v %v", fi, err)
	}
}

func TestKillAndResume(t *testing.T) {
	// One seeder capped at 4 MB/s makes the download take a while, so it
	// can be killed part-way.
	l := newSwarmLab(t, lab.PayloadSpec{Name: "payload.bin", Seed: 3, Size: 40 << 20}, 1<<18, 1, "--max-upload-limit=4M")
	out := t.TempDir()
	p := startCoord(t, "download", l.torrent.Path, "--out", out, "--listen", "127.0.0.1:0",
		"--progress", "log", "--log-interval", "100ms")
	testenv.WaitFor(t, time.Minute, "a third downloaded", func() bool {
		select {
		case <-p.done:
			return true // fails below with the output
		default:
		}
		return lastPercent(p.out.String()) >= 33
	})
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	before := haveCount(t, l.info, out)
	if before == 0 || before == l.info.Info.NumPieces() {
		t.Fatalf("kill landed at %d of %d pieces; want part-way", before, l.info.Info.NumPieces())
	}
	l.resumeFetchesOnlyMissing(t, out, before)
}

// resumeFetchesOnlyMissing runs the same download into out again, where
// kept pieces are recorded, and checks that it completes byte-identical
// having received no more than the missing pieces plus a few pieces' worth
// of end-game duplicates.
func (l *swarmLab) resumeFetchesOnlyMissing(t *testing.T, out string, kept int) {
	t.Helper()
	p := startCoord(t, "download", l.torrent.Path, "--out", out, "--listen", "127.0.0.1:0", "--progress", "none")
	if code := p.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("resume exit %d:\n%s", code, p.out.String())
	}
	if err := l.payload.Verify(out); err != nil {
		t.Fatal(err)
	}
	got := receivedBytes(t, p.out.String())
	missing := l.info.Info.Length - int64(kept)*l.info.Info.PieceLength
	if got > missing+8*l.info.Info.PieceLength {
		t.Fatalf("resumed download received %d bytes; only %d were missing (%d pieces were kept)", got, missing, kept)
	}
}

// lastPercent is the percentage in the newest progress log line.
func lastPercent(out string) float64 {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		f := strings.Fields(lines[i])
		if len(f) > 0 && strings.HasSuffix(f[0], "%") {
			v, err := strconv.ParseFloat(strings.TrimSuffix(f[0], "%"), 64)
			if err == nil {
				return v
			}
		}
	}
	return 0
}

// receivedBytes reads "received N bytes" from coord's completion message.
func receivedBytes(t *testing.T, out string) int64 {
	t.Helper()
	i := strings.Index(out, "received ")
	if i < 0 {
		t.Fatalf("no \"received N bytes\" in output:\n%s", out)
	}
	f := strings.Fields(out[i+len("received "):])
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		t.Fatalf("bad received count in %q", out[i:])
	}
	return n
}

// seedWithCoord starts coord seed of the lab's payload listening on ip
// (a free port), with the flags extra, and waits until the tracker counts
// it as a seeder.
func (l *swarmLab) seedWithCoord(t *testing.T, ip string, extra ...string) *coordProc {
	t.Helper()
	args := append([]string{"seed", l.torrent.Path, "--data", filepath.Dir(l.payload.Path),
		"--listen", ip + ":" + strconv.Itoa(testenv.FreePort(t, ip)), "--progress", "none"}, extra...)
	s := startCoord(t, args...)
	l.waitSeeder(t, "coord seed", 30*time.Second)
	return s
}

// waitSeeder waits up to within until the tracker counts a seeder (who)
// of the lab's torrent.
func (l *swarmLab) waitSeeder(t *testing.T, who string, within time.Duration) {
	t.Helper()
	testenv.WaitFor(t, within, who+" registered as a seeder", func() bool {
		sc, err := l.tracker.ScrapeInfo(context.Background(), l.torrent.InfoHash)
		return err == nil && sc.Complete >= 1
	})
}

// aria2LeechFrom runs aria2c with args (writing to out) against coord
// seed s, waits up to two minutes and checks aria2c's copy; it returns
// aria2c's output.
func (l *swarmLab) aria2LeechFrom(t *testing.T, s *coordProc, out string, args []string) []byte {
	t.Helper()
	leech := exec.Command("aria2c", args...)
	leech.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	done := make(chan []byte, 1)
	go func() { b, _ := leech.CombinedOutput(); done <- b }()
	select {
	case b := <-done:
		if err := l.payload.Verify(out); err != nil {
			t.Fatalf("aria2c's copy: %v\naria2c:\n%s\ncoord:\n%s", err, b, s.out.String())
		}
		return b
	case <-time.After(2 * time.Minute):
		leech.Process.Kill()
		t.Fatalf("aria2c did not finish downloading from coord seed; coord:\n%s", s.out.String())
	}
	return nil
}

func sha1Sum(b []byte) [20]byte { return sha1.Sum(b) }

func TestSeedToAria2(t *testing.T) {
	l := newSwarmLab(t, lab.PayloadSpec{Name: "payload.bin", Seed: 11, Size: 24<<20 + 999}, 1<<18, 0)
	s := l.seedWithCoord(t, "127.0.0.30")
	out := t.TempDir()
	l.aria2LeechFrom(t, s, out, lab.Aria2LeechArgs("127.0.0.31", testenv.FreePort(t, "127.0.0.31"), out, l.torrent.Path))
	select {
	case <-s.done:
		t.Fatalf("coord seed exited while seeding:\n%s", s.out.String())
	default:
	}
	// Interrupted, seed exits non-zero, saying how to resume.
	s.cmd.Process.Signal(os.Interrupt)
	if code := s.wait(t, 30*time.Second); code != exitInterrupted || !strings.Contains(s.out.String(), "interrupted") {
		t.Fatalf("after SIGINT: exit %d, output:\n%s", code, s.out.String())
	}
}

func TestDiskFullThenResume(t *testing.T) {
	testenv.RequireRoot(t)
	l := newSwarmLab(t, lab.PayloadSpec{Name: "payload.bin", Seed: 5, Size: 24 << 20}, 1<<18, 1)
	out := t.TempDir()
	if b, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", out).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, b)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", out).Run() })
	// --sparse: the disk fills mid-download (preallocation would fail at
	// start, which TestDiskFullPreallocated covers).
	p := startCoord(t, "download", l.torrent.Path, "--out", out, "--listen", "127.0.0.1:0", "--progress", "none", "--sparse")
	code := p.wait(t, 2*time.Minute)
	msg := p.out.String()
	if code == 0 || !strings.Contains(msg, "payload.bin") || !strings.Contains(strings.ToLower(msg), "no space left") {
		t.Fatalf("full disk: exit %d, want a clear error naming the file; output:\n%s", code, msg)
	}
	before := haveCount(t, l.info, out) // also checks nothing unwritten is recorded
	l.growAndComplete(t, out)
	t.Logf("full disk kept %d of %d pieces; resume completed", before, l.info.Info.NumPieces())
}

func TestDiskFullPreallocated(t *testing.T) {
	testenv.RequireRoot(t)
	l := newSwarmLab(t, lab.PayloadSpec{Name: "payload.bin", Seed: 5, Size: 24 << 20}, 1<<18, 1)
	out := t.TempDir()
	if b, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", out).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, b)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", out).Run() })
	p := startCoord(t, "download", l.torrent.Path, "--out", out, "--listen", "127.0.0.1:0", "--progress", "none")
	code := p.wait(t, time.Minute)
	msg := p.out.String()
	if code != 1 || !strings.Contains(msg, "needs 24.0 MiB more and only 12.0 MiB is free there") {
		t.Fatalf("a download larger than the free space: exit %d, want a clear error with the figures; output:\n%s", code, msg)
	}
	l.growAndComplete(t, out)
}

// growAndComplete frees space on the full tmpfs mounted at out and runs the
// same download again: it must complete, byte-identical.
func (l *swarmLab) growAndComplete(t *testing.T, out string) {
	t.Helper()
	if b, err := exec.Command("mount", "-o", "remount,size=64m", out).CombinedOutput(); err != nil {
		t.Fatalf("grow tmpfs: %v %s", err, b)
	}
	p := startCoord(t, "download", l.torrent.Path, "--out", out, "--listen", "127.0.0.1:0", "--progress", "none")
	if code := p.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("after freeing space: exit %d\n%s", code, p.out.String())
	}
	if err := l.payload.Verify(out); err != nil {
		t.Fatal(err)
	}
}
