package delegate

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"flotilla/internal/bitfield"
	"flotilla/internal/testenv"
	"flotilla/swarm"
	"flotilla/swarm/swarmtest"
)

// freeBytes is what an unprivileged writer may still write in dir.
func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// fillTo grows the file at path until dir has left bytes free (or less).
func fillTo(t *testing.T, path, dir string, left int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n := freeBytes(t, dir) - left; n > 0 {
		if _, err := f.Write(make([]byte, n)); err != nil {
			t.Fatalf("filling %s: %v", dir, err)
		}
	}
}

// logRecorder is a logger that writes through t and keeps the text for
// assertions.
func logRecorder(t testing.TB, lvl slog.Level) (*slog.Logger, *testenv.SyncBuffer) {
	buf := &testenv.SyncBuffer{}
	return slog.New(slog.NewTextHandler(io.MultiWriter(swarmtest.Writer(t), buf), &slog.HandlerOptions{Level: lvl})), buf
}

// hashChecked is a remote swarm whose pieces the test re-hashes on their
// way to the sub-chief, counting any that is wrong (the sub-chief would
// drop it, so only the count shows that one was shipped).
type hashChecked struct {
	*RemoteSwarm
	tt     *swarmtest.Torrent
	events chan swarm.WorkerEvent
	good   atomic.Int64
	bad    atomic.Int64
}

func newHashChecked(r *RemoteSwarm, tt *swarmtest.Torrent) *hashChecked {
	h := &hashChecked{RemoteSwarm: r, tt: tt, events: make(chan swarm.WorkerEvent)}
	go func() {
		defer close(h.events)
		for ev := range r.Events() {
			if ev.Kind == swarm.EventPiece {
				if sha1.Sum(ev.Data) == tt.Info.PieceHash(ev.Piece) {
					h.good.Add(1)
				} else {
					h.bad.Add(1)
				}
			}
			select {
			case h.events <- ev:
			case <-r.closing:
				return
			}
		}
	}()
	return h
}

func (h *hashChecked) Events() <-chan swarm.WorkerEvent { return h.events }

// workerState is the sub-chief's state of the worker named name, "" if
// it has none.
func workerState(d *testDownload, name string) swarm.WorkerState {
	for _, w := range d.Status().Workers {
		if w.Name == name {
			return w.State
		}
	}
	return ""
}

// TestNodeDiskFull: a node's data directory (an 8 MiB tmpfs, filled but
// for room for 6.5 of the torrent's 64 KiB pieces) fills up during a job.
//
//   - The job fails with ErrNodeDiskFull: the node logs an error that
//     names the directory and says to free space, and reports it to the
//     coordinator (Failed, with its code), whose RemoteSwarm error
//     matches ErrNodeDiskFull and whose sub-chief marks the node gone and
//     returns its lease to the pool at once (a lease timeout of an hour
//     rules out the other way back).
//   - Nothing is lost or corrupted: every piece the node shipped hashes
//     right (the piece cut short by the full disk included), the
//     coordinator's data ends byte-identical.
//   - While the disk stays full a new job is rejected, with a reason that
//     matches ErrNodeDiskFull at the coordinator.
//   - Once space is freed the node takes the next job and the download
//     completes through it (the coordinator's own swarm has no peer).
func TestNodeDiskFull(t *testing.T) {
	dir := testenv.MountTmpfs(t, "8m")
	tt := swarmtest.NewTorrent(t, 4<<20, 64<<10) // 64 pieces
	n := tt.Info.NumPieces()
	pl := tt.Info.PieceLength
	filler := filepath.Join(dir, "filler")
	fillTo(t, filler, dir, 6*pl+pl/2)

	seeder := newSeeder(t, tt)

	nodeLog, nodeBuf := logRecorder(t, slog.LevelInfo)
	srv := newRealNodeAt(t, dir, nodeLog)

	coordLog, coordBuf := logRecorder(t, slog.LevelWarn)
	st := swarmtest.NewStorage(tt.Info, nil)
	cfg := swarmConfig(t, tt, st, 2)
	cfg.Logger = coordLog
	cfg.MinLease = 4
	cfg.LeaseTimeout = time.Hour
	coord := newDownload(t, cfg) // its local swarm has no peers

	dialNode := func() (*RemoteSwarm, error) {
		r, err := Dial(context.Background(), srv.Addr().String(), testKey(1), jobSpec(tt), testClientConfig(t))
		if err == nil {
			t.Cleanup(func() { r.Close() })
		}
		return r, err
	}

	// 1. The disk fills during the job.
	r1, err := dialNode()
	if err != nil {
		t.Fatal(err)
	}
	r1.AddPeers([]netip.AddrPort{addrPort(t, seeder.Addr())})
	w1 := newHashChecked(r1, tt)
	coord.AddWorker(w1)
	testenv.WaitFor(t, 30*time.Second, "the node's session to fail", func() bool { return r1.Err() != nil })
	err = r1.Err()
	t.Logf("coordinator's error for the node: %v", err)
	if !errors.Is(err, ErrRemoteFailed) || !errors.Is(err, ErrNodeDiskFull) || !strings.Contains(err.Error(), "free space in "+dir) {
		t.Fatalf("node's session ended with %v; want ErrRemoteFailed and ErrNodeDiskFull, naming %s and saying to free space", err, dir)
	}
	testenv.WaitFor(t, 10*time.Second, "the sub-chief to drop the node", func() bool { return workerState(coord, "node1") == swarm.WorkerGone })
	testenv.WaitFor(t, 10*time.Second, "the coordinator to log the lease's return", func() bool {
		return strings.Contains(coordBuf.String(), "its lease returns to the pool") && strings.Contains(coordBuf.String(), "node disk full")
	})
	if s := coord.Status(); s.Complete || s.Written >= n {
		t.Fatalf("room for 6.5 pieces held the 64: %+v", s)
	}
	if got := nodeBuf.String(); !strings.Contains(got, "level=ERROR") || !strings.Contains(got, "disk full: the job failed") ||
		!strings.Contains(got, "no space left on device") || !strings.Contains(got, "free space in "+dir) {
		t.Fatalf("node's log lacks a clear disk-full error:\n%s", got)
	}
	testenv.WaitFor(t, 10*time.Second, "the node's job to end and its file to go", func() bool {
		ents, _ := os.ReadDir(dir)
		return srv.Stats().ActiveJobs == 0 && len(ents) == 1 // the filler
	})
	written1 := coord.Status().Written
	t.Logf("first job: %d pieces shipped (all hashed right: %d bad), %d written at the coordinator before the disk filled",
		w1.good.Load(), w1.bad.Load(), written1)
	if w1.good.Load() == 0 {
		t.Fatal("the node shipped nothing before its disk filled")
	}

	// 2. Still full: the node turns a job down, saying why.
	fillTo(t, filler, dir, pl/2)
	if _, err := dialNode(); !errors.Is(err, ErrJobRejected) || !errors.Is(err, ErrNodeDiskFull) {
		t.Fatalf("dial to a node with a full disk: %v; want ErrJobRejected and ErrNodeDiskFull", err)
	} else {
		t.Logf("job on a full disk: %v", err)
	}

	// 3. Space freed: the node takes work again and the download completes.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	r3, err := dialNode()
	if err != nil {
		t.Fatalf("dial after freeing space: %v", err)
	}
	r3.AddPeers([]netip.AddrPort{addrPort(t, seeder.Addr())})
	w3 := newHashChecked(r3, tt)
	coord.AddWorker(w3)
	select {
	case <-coord.Complete():
	case <-time.After(60 * time.Second):
		t.Fatalf("download did not complete after space was freed: %+v", coord.Status())
	}
	if !bytes.Equal(st.Bytes(), tt.Data) {
		t.Fatal("coordinator's data differs")
	}
	if b := w1.bad.Load() + w3.bad.Load(); b != 0 {
		t.Fatalf("the node shipped %d pieces that fail their hash", b)
	}
	for _, w := range coord.Status().Workers {
		if w.Name == "local" && w.Delivered != 0 {
			t.Fatalf("the coordinator's local swarm delivered pieces: %+v", w)
		}
		if w.State == swarm.WorkerQuarantined {
			t.Fatalf("a worker was quarantined: %+v", w)
		}
	}
	t.Logf("second job (after freeing space) shipped %d pieces; download complete and byte-identical", w3.good.Load())
}

// orphanChildEnv makes the test binary a swarm node on the directory it
// names (TestNodeOrphansAfterKill9 runs it and kills it with SIGKILL).
const orphanChildEnv = "FLOTILLA_TEST_ORPHAN_NODE_DIR"

func orphanChild(dir string) {
	cfg := DefaultServerConfig()
	cfg.Key, cfg.Name, cfg.DataDir = testKey(1), "node1", dir
	cfg.PeerListen, cfg.ListenAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := NewServer(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	fmt.Println(srv.Addr().String())
	srv.Serve() // until killed
	os.Exit(3)
}

// TestNodeOrphansAfterKill9: a node killed with SIGKILL in the middle of
// a job leaves its job file behind. The next node started on the
// directory removes it, with the temporary files and the halves of kept
// pairs, logging each file and the bytes freed; a complete kept pair (of
// another torrent) and a file that is not ours survive, and the pair is
// still adopted and shipped by that torrent's next job. While the first
// node ran, a second one could not take its directory.
func TestNodeOrphansAfterKill9(t *testing.T) {
	if dir := os.Getenv(orphanChildEnv); dir != "" {
		orphanChild(dir)
		return
	}
	tt := swarmtest.NewTorrent(t, 2<<20, 64<<10)
	other := swarmtest.NewTorrent(t, 1<<20+333, 32<<10) // whose pieces were kept
	dir := t.TempDir()

	// A complete kept pair of the other torrent: pieces 1 and 3.
	keptPart, keptBits := keptPaths(dir, other.InfoHash)
	kp := make([]byte, other.Info.Length)
	bits := bitfield.New(other.Info.NumPieces())
	for _, p := range []int{1, 3} {
		copy(kp[other.Info.PieceOffset(p):], other.Piece(p))
		bits.Set(p)
	}
	writeFile(t, keptPart, kp)
	writeFile(t, keptBits, append(append([]byte(keptMagic), other.InfoHash[:]...), bits...))
	writeFile(t, filepath.Join(dir, "notes.txt"), []byte("not ours"))

	cmd := exec.Command(os.Args[0], "-test.run=^TestNodeOrphansAfterKill9$")
	cmd.Env = append(os.Environ(), orphanChildEnv+"="+dir)
	cmd.Stderr = swarmtest.Writer(t)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		t.Fatalf("child node printed no address: %v", sc.Err())
	}
	addr := strings.TrimSpace(sc.Text())

	cfg := DefaultServerConfig()
	cfg.Key, cfg.DataDir, cfg.Logger = testKey(1), dir, swarmtest.Logger(t, slog.LevelWarn)
	if s, err := NewServer(cfg); !errors.Is(err, ErrDataDirInUse) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("second node on a directory in use: %v; want ErrDataDirInUse", err)
	}

	seeder := newSeeder(t, tt)
	r := mustDialNode(t, addr, tt)
	defer r.Close()
	r.AddPeers([]netip.AddrPort{addrPort(t, seeder.Addr())})
	r.Assign(allPieces(tt.Info.NumPieces()))
	collect(t, r, tt, 8, 30*time.Second)

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed = true
	jobs, _ := filepath.Glob(filepath.Join(dir, "job-*.part"))
	if len(jobs) != 1 {
		t.Fatalf("after kill -9: job files %v, want one", jobs)
	}
	// What else a kill leaves at an unlucky moment: a list being
	// written, and halves of kept pairs.
	ih2, ih3 := tt.InfoHash, other.InfoHash
	ih2[0] ^= 1
	ih3[1] ^= 1
	p2, _ := keptPaths(dir, ih2)
	_, b3 := keptPaths(dir, ih3)
	writeFile(t, keptBits+".tmp", []byte(keptMagic))
	writeFile(t, p2, make([]byte, 4096))
	writeFile(t, b3, append([]byte(keptMagic), ih3[:]...))
	orphans := []string{jobs[0], keptBits + ".tmp", p2, b3}
	var want int64
	for _, p := range orphans {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		want += st.Blocks * 512
	}

	log, buf := logRecorder(t, slog.LevelInfo)
	srv := newRealNodeAt(t, dir, log)
	for _, p := range orphans {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("orphan %s not removed at start (%v)", filepath.Base(p), err)
		}
		if !strings.Contains(buf.String(), "file="+filepath.Base(p)) {
			t.Errorf("removal of %s not logged", filepath.Base(p))
		}
	}
	if line := fmt.Sprintf("files=%d bytes=%d", len(orphans), want); !strings.Contains(buf.String(), line) {
		t.Errorf("log does not total the removal as %q:\n%s", line, buf.String())
	}
	for _, p := range []string{keptPart, keptBits, filepath.Join(dir, "notes.txt")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s did not survive the start: %v", filepath.Base(p), err)
		}
	}

	// The surviving pair is adopted by the other torrent's next job.
	r2, err := Dial(context.Background(), srv.Addr().String(), testKey(1), jobSpec(other), testClientConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	got, _ := collect(t, r2, other, 2, 10*time.Second)
	if !got[1] || !got[3] {
		t.Fatalf("kept pieces shipped: %v, want 1 and 3", got)
	}
	t.Logf("removed %d orphans (%d bytes on disk) after kill -9; the kept pair survived and shipped %d pieces", len(orphans), want, len(got))
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
