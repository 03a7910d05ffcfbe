package piecestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"flotilla/internal/testenv"
	"flotilla/metainfo"
)

// awkward: a piece spanning three files, zero-length files (one nested, one
// last), nested directories and a short last piece.
func awkwardTorrent(t testing.TB) *testTorrent {
	return newTorrent(t, "awk", 16,
		fileSpec{"d1/a", 10},
		fileSpec{"d1/d2/empty", 0},
		fileSpec{"b", 3},
		fileSpec{"d3/d4/c", 20},
		fileSpec{"z", 0},
	)
}

func TestGeometry(t *testing.T) {
	tt := awkwardTorrent(t)
	dir := t.TempDir()
	s := openStore(t, testConfig(tt, dir, nil), nil)
	if n := s.NumPieces(); n != 3 {
		t.Fatalf("pieces = %d, want 3", n)
	}
	if got := s.lay.pieceSize(2); got != 1 {
		t.Fatalf("last piece size = %d, want 1", got)
	}
	// Piece 0 = a[0:10] + b[0:3] + c[0:3]: three files.
	var files []int
	if files = s.lay.appendPieceFiles(nil, 0); !slices.Equal(files, []int{0, 2, 3}) {
		t.Fatalf("piece 0 files = %v, want [0 2 3]", files)
	}
	// The store's mapping agrees with metainfo's.
	for p := range s.NumPieces() {
		var got []metainfo.FileRange
		_ = s.lay.spans(s.lay.pieceOffset(p), s.lay.pieceSize(p), func(fi int, fo, _, n int64) error {
			got = append(got, metainfo.FileRange{File: fi, Offset: fo, Length: n})
			return nil
		})
		if want := tt.info.FileRanges(p); !slices.Equal(got, want) {
			t.Fatalf("piece %d ranges = %v, want %v", p, got, want)
		}
	}
	// Every file exists with its length, zero-length ones included.
	for i, f := range tt.info.Files {
		st, err := os.Lstat(filepath.Join(dir, tt.info.FilePath(i)))
		if err != nil {
			t.Fatalf("file %d: %v", i, err)
		}
		if !st.Mode().IsRegular() || st.Size() != f.Length {
			t.Fatalf("%s: mode %v size %d, want regular %d", tt.info.FilePath(i), st.Mode(), st.Size(), f.Length)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".flotilla", recordName(tt.hash))); err != nil {
		t.Fatalf("record file: %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	tt := awkwardTorrent(t)
	dir := t.TempDir()
	s := openStore(t, testConfig(tt, dir, nil), nil)
	n := s.NumPieces()
	for _, p := range rand.Perm(n) {
		submit(t, s, tt, p)
	}
	got := waitWritten(t, s, n)
	slices.Sort(got)
	if !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("written = %v", got)
	}
	if !s.Complete() {
		t.Fatal("not complete after every piece was written")
	}
	for p := range n {
		b, err := s.ReadPiece(p, nil)
		if err != nil || !bytes.Equal(b, tt.piece(p)) {
			t.Fatalf("ReadPiece(%d) = %x, %v; want %x", p, b, err, tt.piece(p))
		}
	}
	// A block crossing the three files of piece 0.
	blk := make([]byte, 8)
	if k, err := s.ReadBlock(0, 6, blk); err != nil || k != 8 || !bytes.Equal(blk, tt.piece(0)[6:14]) {
		t.Fatalf("ReadBlock = %d, %v", k, err)
	}
	if _, err := s.ReadBlock(2, 0, blk); !errors.Is(err, ErrBadRange) {
		t.Fatalf("ReadBlock past the short last piece: %v, want ErrBadRange", err)
	}
	if _, err := s.ReadBlock(3, 0, blk[:1]); !errors.Is(err, ErrBadPiece) {
		t.Fatalf("ReadBlock of piece 3: %v, want ErrBadPiece", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkFiles(t, tt, dir)
	if _, ok := <-s.Written(); ok {
		t.Fatal("Written not closed by Close")
	}
	if err := s.Submit(context.Background(), 0, tt.piece(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Submit after Close: %v, want ErrClosed", err)
	}
	if _, err := s.ReadPiece(0, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("ReadPiece after Close: %v, want ErrClosed", err)
	}
}

func TestSubmitRejectsBadInput(t *testing.T) {
	tt := awkwardTorrent(t)
	s := openStore(t, testConfig(tt, t.TempDir(), nil), nil)
	ctx := context.Background()
	for _, c := range []struct {
		p int
		n int
	}{{-1, 16}, {3, 1}, {0, 15}, {2, 16}} {
		if err := s.Submit(ctx, c.p, make([]byte, c.n)); !errors.Is(err, ErrBadPiece) {
			t.Errorf("Submit(%d, %d bytes) = %v, want ErrBadPiece", c.p, c.n, err)
		}
	}
	if _, err := s.ReadPiece(0, nil); !errors.Is(err, ErrNotComplete) {
		t.Fatalf("ReadPiece of a missing piece: %v, want ErrNotComplete", err)
	}
}

// gate blocks pwritev calls until released, reporting each entry.
type gate struct {
	entered chan struct{}
	release chan struct{}
}

func newGate() *gate { return &gate{entered: make(chan struct{}, 100), release: make(chan struct{})} }

func (g *gate) hooks() *hooks {
	h := defaultHooks()
	inner := h.pwritev
	h.pwritev = func(fd int, iovs [][]byte, off int64) (int, error) {
		g.entered <- struct{}{}
		<-g.release
		return inner(fd, iovs, off)
	}
	return &h
}

func TestOutOfOrderSubmitsCoalesce(t *testing.T) {
	tt := newTorrent(t, "one", 1024, fileSpec{"", 8 * 1024})
	g := newGate()
	s := openStore(t, testConfig(tt, t.TempDir(), nil), g.hooks())
	submit(t, s, tt, 0)
	<-g.entered // the writer is writing piece 0 and cannot take more
	for _, p := range []int{7, 3, 5, 1, 2, 6, 4} {
		submit(t, s, tt, p)
	}
	close(g.release)
	waitWritten(t, s, 8)
	st := s.Stats()
	if st.Runs != 2 || st.WriteCalls != 2 {
		t.Fatalf("runs = %d, write calls = %d; want 2 and 2 (piece 0, then 1..7 coalesced)", st.Runs, st.WriteCalls)
	}
	if st.BytesWritten != 8*1024 || st.PiecesWritten != 8 {
		t.Fatalf("stats = %+v", st)
	}
	// Each run's write is timed, and each batch's sync (the gate held
	// the first write back, so that run took a while).
	if w := st.WriteLatency; w.Count != 2 || w.Sum <= 0 || sumCounts(w) != 2 {
		t.Errorf("write latency %+v, want the 2 runs", w)
	}
	if y := st.SyncLatency; y.Count < 1 || sumCounts(y) != y.Count {
		t.Errorf("sync latency %+v, want a sync or more", y)
	}
	s.Close()
	checkFiles(t, tt, s.cfg.Dir)
}

func TestCoalescedRunAcrossFiles(t *testing.T) {
	tt := newTorrent(t, "awk8", 8, fileSpec{"d1/a", 10}, fileSpec{"d1/d2/empty", 0}, fileSpec{"b", 3}, fileSpec{"d3/c", 20})
	g := newGate()
	s := openStore(t, testConfig(tt, t.TempDir(), nil), g.hooks())
	submit(t, s, tt, 4) // c's tail; the writer blocks writing it
	<-g.entered
	for _, p := range []int{2, 0, 3, 1} {
		submit(t, s, tt, p)
	}
	close(g.release)
	go func() {
		for range g.entered {
		}
	}()
	waitWritten(t, s, 5)
	close(g.entered)
	// Run 1: piece 4 (one call). Run 2: pieces 0..3 = a[0:10] b[0:3] c[0:19],
	// one pwritev per file part.
	if st := s.Stats(); st.Runs != 2 || st.WriteCalls != 4 {
		t.Fatalf("runs = %d, write calls = %d; want 2 runs, 4 calls", st.Runs, st.WriteCalls)
	}
	s.Close()
	checkFiles(t, tt, s.cfg.Dir)
}

func TestBackPressure(t *testing.T) {
	tt := newTorrent(t, "bp", 1024, fileSpec{"", 8 * 1024})
	g := newGate()
	cfg := testConfig(tt, t.TempDir(), nil)
	cfg.WriteBudget = 2 * 1024
	s := openStore(t, cfg, g.hooks())
	submit(t, s, tt, 0)
	<-g.entered
	submit(t, s, tt, 1) // 2 KiB queued: the budget is full
	if q := s.Stats().QueuedBytes; q != 2048 {
		t.Fatalf("queued = %d, want 2048", q)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	b := s.GetBuffer(2)
	copy(b, tt.piece(2))
	if err := s.Submit(ctx, 2, b); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Submit over budget = %v, want to block until the deadline", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Submit(context.Background(), 2, b) }()
	select {
	case err := <-done:
		t.Fatalf("Submit over budget returned %v while the writer is stuck", err)
	case <-time.After(30 * time.Millisecond):
	}
	close(g.release) // the writer finishes piece 0: room for piece 2
	if err := <-done; err != nil {
		t.Fatalf("Submit after room was made: %v", err)
	}
	go func() {
		for range g.entered {
		}
	}()
	for p := 3; p < 8; p++ {
		submit(t, s, tt, p)
	}
	waitWritten(t, s, 8)
	close(g.entered)
	if q := s.Stats().QueuedBytes; q != 0 {
		t.Fatalf("queued = %d after everything was written", q)
	}
}

func TestVerify(t *testing.T) {
	tt := newTorrent(t, "v", 1000, fileSpec{"p/q", 3500}, fileSpec{"r", 0}, fileSpec{"s", 2100})
	dir := t.TempDir()
	// Data placed by someone else (a seeder's files), no record; "s" is
	// one byte short, so it is not trusted at Open (pieces 3-5 touch it)
	// and is resized.
	for i, f := range tt.info.Files {
		p := filepath.Join(dir, tt.info.FilePath(i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		end := f.Offset + f.Length
		if tt.info.Files[i].Path[0] == "s" {
			end--
		}
		os.WriteFile(p, tt.data[f.Offset:end], 0o644)
	}
	s := openStore(t, testConfig(tt, dir, nil), nil)
	n := s.NumPieces()
	if got := haveList(s.Have(), n); !slices.Equal(got, []int{0, 1, 2}) || s.Stats().CheckedAtOpen != 3 {
		t.Fatalf("Have at Open = %v after hashing %d pieces; want the pieces of p/q", got, s.Stats().CheckedAtOpen)
	}
	// The missing byte arrives behind the store's back; Verify finds it.
	f, _ := os.OpenFile(filepath.Join(dir, "v", "s"), os.O_WRONLY, 0)
	f.WriteAt(tt.data[len(tt.data)-1:], 2099)
	f.Close()
	calls := 0
	if err := s.Verify(context.Background(), func(done, total int) {
		calls++
		if total != n || done != calls {
			t.Errorf("progress(%d, %d) at call %d", done, total, calls)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if !s.Complete() || calls != n {
		t.Fatalf("complete %v after %d progress calls", s.Complete(), calls)
	}
	if got := waitWritten(t, s, n-3); len(got) != n-3 {
		t.Fatal(got)
	}
	// Corrupt piece 3 (inside p/q) behind the store's back; Verify drops it.
	f, _ = os.OpenFile(filepath.Join(dir, "v", "p", "q"), os.O_WRONLY, 0)
	f.WriteAt([]byte("X"), 3001)
	f.Close()
	if err := s.Verify(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	want := []int{0, 1, 2, 4, 5}
	if got := haveList(s.Have(), n); !slices.Equal(got, want) {
		t.Fatalf("Have after corruption = %v, want %v", got, want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Verify(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Verify with a cancelled context: %v", err)
	}
	submit(t, s, tt, 3)
	waitWritten(t, s, 1)
	s.Close()
	checkFiles(t, tt, dir)
}

func TestPaddingFilesNotStored(t *testing.T) {
	data := bytes.Repeat([]byte{7}, 48)
	files := []metainfo.File{{Path: []string{"a"}, Length: 24}, {Path: []string{".pad", "8"}, Length: 8, Attr: "p"}, {Path: []string{"b"}, Length: 16}}
	copy(data[24:32], make([]byte, 8))
	raw, err := metainfo.Build("pad", files, 16, nil, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tor, err := metainfo.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	tt := &testTorrent{info: tor.Info, hash: tor.InfoHash, data: data}
	dir := t.TempDir()
	s := openStore(t, testConfig(tt, dir, nil), nil)
	for p := range s.NumPieces() {
		submit(t, s, tt, p)
	}
	waitWritten(t, s, s.NumPieces())
	if b, err := s.ReadPiece(1, nil); err != nil || !bytes.Equal(b, data[16:32]) {
		t.Fatalf("ReadPiece over padding = %v, %v", b, err)
	}
	s.Close()
	if _, err := os.Stat(filepath.Join(dir, "pad", ".pad")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("padding file stored: %v", err)
	}
	if err := s.Verify(context.Background(), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Verify after Close: %v", err)
	}
}

// TestConcurrentSubmitAndRead: several submitters and readers at once
// (run with -race).
func TestConcurrentSubmitAndRead(t *testing.T) {
	tt := newTorrent(t, "conc", 4096, fileSpec{"a", 100_000}, fileSpec{"b/c", 0}, fileSpec{"d", 150_000})
	cfg := testConfig(tt, t.TempDir(), nil)
	cfg.WriteBudget = 16 << 10 // back-pressure all the time
	cfg.SyncBytes = 32 << 10
	s := openStore(t, cfg, nil)
	n := s.NumPieces()
	perm := rand.Perm(n)
	errs := make(chan error, 8)
	var submitters, readers sync.WaitGroup
	for g := range 4 {
		submitters.Add(1)
		go func() {
			defer submitters.Done()
			for i := g; i < n; i += 4 {
				p := perm[i]
				b := s.GetBuffer(p)
				copy(b, tt.piece(p))
				if err := s.Submit(context.Background(), p, b); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	for range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			blk := make([]byte, 1000)
			for {
				select {
				case <-done:
					return
				default:
				}
				p := rand.IntN(n)
				buf := blk[:min(int64(len(blk)), s.lay.pieceSize(p))]
				begin := rand.Int64N(s.lay.pieceSize(p) - int64(len(buf)) + 1)
				_, err := s.ReadBlock(p, begin, buf)
				if errors.Is(err, ErrNotComplete) {
					continue
				}
				if err != nil || !bytes.Equal(buf, tt.piece(p)[begin:begin+int64(len(buf))]) {
					errs <- fmt.Errorf("read piece %d at %d: %v", p, begin, err)
					return
				}
			}
		}()
	}
	submitters.Wait()
	waitWritten(t, s, n)
	close(done)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkFiles(t, tt, cfg.Dir)
}

// TestRunLongerThanIOVMax: a coalesced run of more pieces than IOV_MAX is
// split into several pwritev calls, and short writes are resumed.
func TestRunLongerThanIOVMax(t *testing.T) {
	tt := newTorrent(t, "iov", 16, fileSpec{"", 3000 * 16})
	g := newGate()
	h := g.hooks()
	gated := h.pwritev
	short := 0
	h.pwritev = func(fd int, iovs [][]byte, off int64) (int, error) {
		if len(iovs) > maxIovecs {
			t.Errorf("pwritev with %d iovecs", len(iovs))
		}
		if len(iovs) > 2 && short < 2 { // a short write ending mid-iovec
			short++
			return gated(fd, [][]byte{iovs[0], iovs[1][:7]}, off)
		}
		return gated(fd, iovs, off)
	}
	s := openStore(t, testConfig(tt, t.TempDir(), nil), h)
	submit(t, s, tt, 0)
	<-g.entered
	for _, p := range rand.Perm(3000) {
		if p != 0 {
			submit(t, s, tt, p)
		}
	}
	close(g.release)
	go func() {
		for range g.entered {
		}
	}()
	waitWritten(t, s, 3000)
	close(g.entered)
	// piece 0; then 2999 pieces = 1024+1024+951 iovecs, plus two resumed
	// short writes.
	if st := s.Stats(); st.Runs != 2 || st.WriteCalls != 1+3+2 {
		t.Fatalf("runs %d, write calls %d; want 2 and 6", st.Runs, st.WriteCalls)
	}
	s.Close()
	checkFiles(t, tt, s.cfg.Dir)
}

// TestVerifyPiecesLargerThanReads: pieces longer than one hashing read.
func TestVerifyPiecesLargerThanReads(t *testing.T) {
	tt := newTorrent(t, "big", 3*hashChunk, fileSpec{"x", 2 * hashChunk}, fileSpec{"y", 2*hashChunk + 5})
	dir := t.TempDir()
	s := openStore(t, testConfig(tt, dir, nil), nil)
	submit(t, s, tt, 1)
	submit(t, s, tt, 0)
	waitWritten(t, s, 2)
	s.Close()
	os.Remove(filepath.Join(dir, ".flotilla", recordName(tt.hash)))
	// Without a record, Open hashes the files already there.
	s2 := openStore(t, testConfig(tt, dir, nil), nil)
	if !s2.Complete() || s2.Stats().CheckedAtOpen != 2 {
		t.Fatalf("without a record: complete %v after hashing %d pieces at Open", s2.Complete(), s2.Stats().CheckedAtOpen)
	}
	if err := s2.Verify(context.Background(), nil); err != nil || !s2.Complete() {
		t.Fatalf("Verify: %v, complete %v", err, s2.Complete())
	}
}

func sumCounts(l Latency) (n int64) {
	for _, c := range l.Counts {
		n += c
	}
	return n
}

func TestLatencyBuckets(t *testing.T) {
	var h latencyHist
	for _, d := range []time.Duration{0, 100 * time.Microsecond, 101 * time.Microsecond, time.Hour} {
		h.record(d)
	}
	l := h.snapshot()
	if l.Counts[0] != 2 || l.Counts[1] != 1 || l.Counts[len(LatencyBounds)] != 1 || l.Count != 4 {
		t.Errorf("buckets %v (count %d)", l.Counts, l.Count)
	}
}

// A complete store keeps no piece buffers: its pool empties at completion
// and buffers put back afterwards are dropped (a seeding torrent's memory).
func TestCompleteStoreKeepsNoBuffers(t *testing.T) {
	tt := newTorrent(t, "one", 1024, fileSpec{"", 8 * 1024})
	s := openStore(t, testConfig(tt, t.TempDir(), nil), nil)
	for p := range s.NumPieces() {
		submit(t, s, tt, p)
	}
	waitWritten(t, s, s.NumPieces())
	testenv.WaitFor(t, 10*time.Second, "the pool emptied", func() bool { return s.Complete() && s.pool.Len() == 0 })
	s.PutBuffer(make([]byte, 0, 1024))
	if n := s.pool.Len(); n != 0 {
		t.Fatalf("%d buffers pooled in a complete store", n)
	}
}
