package piecestore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"flotilla/internal/bitfield"
	"flotilla/internal/testenv"
)

// event is one system call seen by the recording hooks.
type event struct {
	kind     string // "write", "sync", "record"
	fd       int
	off, len int64
	have     []byte
}

type eventLog struct {
	mu     sync.Mutex
	events []event
}

func (l *eventLog) add(e event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventLog) hooks() *hooks {
	h := defaultHooks()
	h.pwritev = func(fd int, iovs [][]byte, off int64) (int, error) {
		n, err := defaultHooks().pwritev(fd, iovs, off)
		l.add(event{kind: "write", fd: fd, off: off, len: int64(n)})
		return n, err
	}
	h.fdatasync = func(fd int) error {
		err := defaultHooks().fdatasync(fd)
		l.add(event{kind: "sync", fd: fd})
		return err
	}
	h.recorded = func(have []byte) { l.add(event{kind: "record", have: have}) }
	return &h
}

// TestWriteSyncRecordOrder proves the durability order on every record: each
// newly recorded piece's bytes were written, then every file holding them
// was synced, and only then was the record committed.
func TestWriteSyncRecordOrder(t *testing.T) {
	tt := newTorrent(t, "order", 512, fileSpec{"a", 1500}, fileSpec{"d/b", 700}, fileSpec{"d/e", 0}, fileSpec{"c", 3000})
	log := &eventLog{}
	cfg := testConfig(tt, t.TempDir(), nil)
	cfg.SyncBytes = 1024 // several batches
	s := openStore(t, cfg, log.hooks())
	n := s.NumPieces()
	perm := rand.Perm(n)
	for len(perm) > 0 { // a few at a time: several batches and records
		k := min(3, len(perm))
		for _, p := range perm[:k] {
			submit(t, s, tt, p)
		}
		waitWritten(t, s, k)
		perm = perm[k:]
	}
	s.Close()

	log.mu.Lock()
	defer log.mu.Unlock()
	prev := bitfield.New(n)
	records := 0
	for r, e := range log.events {
		if e.kind != "record" {
			continue
		}
		records++
		for p := range n {
			if !bitfield.Bitfield(e.have).Has(p) || prev.Has(p) {
				continue
			}
			_ = s.lay.spans(s.lay.pieceOffset(p), s.lay.pieceSize(p), func(fi int, fo, _, ln int64) error {
				fd := -1
				// Descriptors are closed now; find the one used for fi by
				// matching write ranges instead: the file's writes.
				w := -1
				for i := r - 1; i >= 0; i-- {
					x := log.events[i]
					if x.kind == "write" && fdFile(s, x.fd, fi) && x.off < fo+ln && fo < x.off+x.len {
						w, fd = i, x.fd
						break
					}
				}
				if w < 0 {
					t.Fatalf("piece %d recorded (event %d) without a write to %s", p, r, s.lay.files[fi].rel)
				}
				for i := w + 1; i < r; i++ {
					if x := log.events[i]; x.kind == "sync" && x.fd == fd {
						return nil
					}
				}
				t.Fatalf("piece %d recorded (event %d) but %s was not synced after its write (event %d)", p, r, s.lay.files[fi].rel, w)
				return nil
			})
		}
		prev = e.have
	}
	if records < 2 || len(haveList(prev, n)) != n {
		t.Fatalf("%d records, last has %d of %d pieces", records, len(haveList(prev, n)), n)
	}
}

// fdFile reports whether descriptor fd belonged to file fi. The test keeps
// the mapping from open time (descriptors are -1 after Close).
func fdFile(s *Store, fd, fi int) bool { return s.testFDs[fi] == fd }

// TestCrashRecordsOnlySyncedPieces: pieces written but not yet synced when
// the process dies are not in the record, and a reopen does not claim them.
func TestCrashRecordsOnlySyncedPieces(t *testing.T) {
	tt := newTorrent(t, "crash", 256, fileSpec{"a", 1000}, fileSpec{"b", 1048})
	dir := t.TempDir()
	var block atomic.Bool
	entered := make(chan struct{}, 1)
	unblock := make(chan struct{})
	h := defaultHooks()
	h.fdatasync = func(fd int) error {
		if block.Load() {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-unblock
			return errors.New("simulated crash: the sync never happened")
		}
		return defaultHooks().fdatasync(fd)
	}
	s := openStore(t, testConfig(tt, dir, nil), &h)
	var once sync.Once
	release := func() { once.Do(func() { close(unblock) }) }
	t.Cleanup(release) // runs before the store's Close if the test fails
	for p := range 4 {
		submit(t, s, tt, p)
	}
	waitWritten(t, s, 4)
	block.Store(true)
	for p := 4; p < 8; p++ {
		submit(t, s, tt, p)
	}
	<-entered // 4..7 are written and the syncer is stuck syncing them
	testenv.WaitFor(t, 10*time.Second, "pieces 4..7 written", func() bool { return s.Stats().PiecesWritten == 8 })

	// This is what a crash right now leaves on disk.
	rec := readRecord(t, s, dir)
	if got := haveList(rec.have, s.NumPieces()); !slices.Equal(got, []int{0, 1, 2, 3}) {
		t.Fatalf("record on disk = %v, want [0 1 2 3]", got)
	}
	killed := make(chan struct{})
	go func() { s.kill(); close(killed) }()
	release()
	<-killed

	s2 := openStore(t, testConfig(tt, dir, nil), nil)
	if got := haveList(s2.Have(), s2.NumPieces()); !slices.Equal(got, []int{0, 1, 2, 3}) {
		t.Fatalf("Have after crash = %v, want [0 1 2 3]", got)
	}
	for p := 4; p < s2.NumPieces(); p++ {
		submit(t, s2, tt, p)
	}
	waitWritten(t, s2, s2.NumPieces()-4)
	s2.Close()
	checkFiles(t, tt, dir)
}

func readRecord(t *testing.T, s *Store, dir string) *record {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, ".flotilla", recordName(s.cfg.InfoHash)))
	if err != nil {
		t.Fatal(err)
	}
	rec, warn := pickRecord(data, s.rec.slot, s.cfg.InfoHash, s.lay)
	if rec == nil {
		t.Fatalf("no valid record on disk: %v", warn)
	}
	return rec
}

// TestKill9 runs a writer in a child process, kills it with SIGKILL in the
// middle, and checks that every piece the reopened store claims is really
// on disk and that nothing reported as written was lost.
func TestKill9(t *testing.T) {
	if dir := os.Getenv("PIECESTORE_KILL9_DIR"); dir != "" {
		kill9Child(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$")
	cmd.Env = append(os.Environ(), "PIECESTORE_KILL9_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var reported []int
	sc := bufio.NewScanner(out)
	for sc.Scan() && len(reported) < 40 {
		if p, err := strconv.Atoi(sc.Text()); err == nil {
			reported = append(reported, p)
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if len(reported) < 40 {
		t.Fatalf("child reported only %d pieces", len(reported))
	}
	tt := kill9Torrent(t)
	s := openStore(t, testConfig(tt, dir, nil), nil)
	have := haveList(s.Have(), s.NumPieces())
	for _, p := range reported {
		if !slices.Contains(have, p) {
			t.Fatalf("piece %d was reported written but is not in Have after kill -9", p)
		}
	}
	for _, p := range have {
		b, err := s.ReadPiece(p, nil)
		if err != nil || string(b) != string(tt.piece(p)) {
			t.Fatalf("piece %d in Have but wrong on disk (%v)", p, err)
		}
	}
	t.Logf("child reported %d pieces; %d recorded of %d", len(reported), len(have), s.NumPieces())
}

func kill9Torrent(t testing.TB) *testTorrent {
	return newTorrent(t, "k9", 64<<10, fileSpec{"a", 3 << 20}, fileSpec{"b", 5<<20 + 123})
}

// kill9Child writes pieces forever (re-submitting after each completion
// would be a no-op, so it stops when done and waits to be killed).
func kill9Child(dir string) {
	tb := &testing.T{}
	tt := kill9Torrent(tb)
	cfg := testConfig(tt, dir, nil)
	cfg.SyncBytes = 256 << 10
	s, err := Open(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	go func() {
		for p := range s.Written() {
			fmt.Println(p)
		}
	}()
	for _, p := range rand.Perm(s.NumPieces()) {
		b := s.GetBuffer(p)
		copy(b, tt.piece(p))
		if err := s.Submit(context.Background(), p, b); err != nil {
			fmt.Fprintln(os.Stderr, "child submit:", err)
			os.Exit(2)
		}
		time.Sleep(time.Millisecond) // a download pace, so the kill lands mid-way
	}
	select {}
}
