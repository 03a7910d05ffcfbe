package piecestore

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"flotilla/internal/bitfield"
	"flotilla/internal/bufpool"
)

// hooks are the system calls the I/O goroutines make, replaceable by tests
// (fault injection and ordering checks).
type hooks struct {
	pwritev   func(fd int, iovs [][]byte, off int64) (int, error)
	fdatasync func(fd int) error
	// syncfs syncs the file system of the output directory (given its
	// descriptor): used instead of fdatasync for batches of many files.
	syncfs func(fd int) error
	// recorded, if set, is called by the syncer after a record is durable,
	// with the recorded bitfield (read-only).
	recorded func(have []byte)
}

func defaultHooks() hooks {
	return hooks{pwritev: unix.Pwritev, fdatasync: unix.Fdatasync, syncfs: unix.Syncfs}
}

// Store maps a torrent's pieces onto its files beneath Config.Dir. See the
// package documentation for the goroutines, the write plan and the record.
// All methods are safe for concurrent use.
type Store struct {
	cfg    Config
	log    *slog.Logger
	lay    *layout
	root   string
	rootfd int
	rec    *recorder
	hooks  hooks
	fds    *fdCache
	made   []string // paths Open created, in order: removed if Open fails

	have  bitset       // recorded complete; set only by the syncer
	nHave atomic.Int64 // population of have

	writeBudget *writeBudget
	submitMu    sync.RWMutex // guards closed against sends on submitCh
	closed      bool
	submitCh    chan pieceReq   // Submit -> writer
	syncCh      chan *syncBatch // writer -> syncer
	ctlCh       chan verifyCmd  // Verify -> syncer
	written     chan int
	pool        *bufpool.Pool

	fdMu      sync.RWMutex // readers hold R while using the cache
	fdsClosed bool

	errMu sync.Mutex
	err   error

	st counters

	closing    chan struct{}
	killed     chan struct{} // tests: simulate kill -9 (no flush, no record)
	writerDone chan struct{}
	syncerDone chan struct{}
	closeOnce  sync.Once
	closeErr   error

	testFDs  []int // descriptors per file at open, for tests' event logs
	testDFDs []int // the O_DIRECT descriptors (-1: none)
}

type counters struct {
	bytesWritten, writeCalls, runs, piecesWritten atomic.Int64
	directBytes                                   atomic.Int64
	checked                                       atomic.Int64
	syncs, records, dropped                       atomic.Int64
	writeTime, syncTime                           latencyHist
}

// Stats is a snapshot of the store's counters.
type Stats struct {
	BytesWritten   int64 // piece bytes handed to the kernel this session
	PiecesWritten  int64 // pieces written this session (not necessarily recorded)
	WriteCalls     int64 // pwritev system calls
	DirectBytes    int64 // of BytesWritten, written with O_DIRECT (Config.DirectIO)
	Runs           int64 // coalesced runs: contiguous torrent ranges written as one plan step
	Syncs          int64 // fdatasync calls on data files
	Records        int64 // completion records committed
	QueuedBytes    int64 // accepted by Submit, not yet written
	PiecesComplete int   // pieces recorded complete
	Dropped        int64 // Written notifications dropped (channel full; should stay 0)
	CheckedAtOpen  int64 // pieces hashed at Open: existing data without a record, or files changed since it
	FileOpens      int64 // files opened (a file closed to stay within MaxOpenFiles counts again when reopened)
	PeakOpenFiles  int   // most descriptors of the torrent's files open at once
	// WriteLatency is how long each coalesced run took to write (its
	// pwritev calls); SyncLatency how long each batch's fdatasync (or
	// syncfs) of the files it touched took: the disk's write latency.
	WriteLatency, SyncLatency Latency
}

// Open prepares the torrent's files beneath cfg.Dir (creating missing ones,
// sparse or preallocated), loads the completion record and checks it
// against the files' sizes and modification times, re-hashing recorded
// pieces of files that changed, and starts the writer.
func Open(cfg Config) (*Store, error) { return open(cfg, defaultHooks()) }

func open(cfg Config, h hooks) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	lay, err := newLayout(c.Dir, c.Info)
	if err != nil {
		return nil, err
	}
	root, _ := filepath.Abs(c.Dir) // newLayout succeeded, so Abs does
	if c.DirectIO {
		for i := range lay.files {
			if lay.files[i].stored() {
				lay.files[i].dioAlign = -1 // probed when first opened
			}
		}
	}
	// Before creating anything: is there room? (Sparse files only warn:
	// the download then stops with ErrDiskFull where the disk fills.)
	if err := CheckSpace(root, c.Info); err != nil {
		if c.Preallocate {
			return nil, err
		}
		c.Logger.Warn("piecestore: not enough free space for the whole torrent; writing sparse files anyway", "err", err)
	}
	var made []string
	rootfd, err := openRoot(root, &made)
	if err != nil {
		removeMade(made)
		return nil, err
	}
	slots := int(min(c.WriteBudget/lay.pieceLen+2, int64(lay.numPieces)+1))
	s := &Store{
		cfg: c, log: c.Logger, lay: lay, root: root, rootfd: rootfd, hooks: h, made: made,
		fds:         newFDCache(lay, rootfd, c.MaxOpenFiles),
		have:        newBitset(lay.numPieces),
		writeBudget: newWriteBudget(c.WriteBudget),
		submitCh:    make(chan pieceReq, slots),
		syncCh:      make(chan *syncBatch),
		ctlCh:       make(chan verifyCmd),
		pool:        bufpool.New(lay.pieceLen, slots),
		closing:     make(chan struct{}),
		killed:      make(chan struct{}),
		writerDone:  make(chan struct{}),
		syncerDone:  make(chan struct{}),
	}
	ok := false
	defer func() {
		if !ok {
			s.closeFiles()
			removeMade(s.made)
		}
	}()
	stamps, err := s.prepare()
	if err != nil {
		return nil, err
	}
	s.written = make(chan int, lay.numPieces)
	for i := range lay.files {
		fd, dfd := s.fds.peek(i)
		s.testFDs = append(s.testFDs, fd)
		s.testDFDs = append(s.testDFDs, dfd)
	}
	s.made = nil
	ok = true
	w := newWriter(s)
	y := &syncer{s: s, stamps: stamps, recHave: s.have.bitfield(lay.numPieces)}
	go w.run()
	go y.run()
	return s, nil
}

// syncFilesThreshold: a batch of more files than this is made durable with
// one syncfs of the output directory's file system instead of an fdatasync
// per file (which would also reopen files closed by the descriptor cache).
const syncFilesThreshold = 16

// syncData makes the written data of files durable.
func (s *Store) syncData(files []int) error {
	if len(files) > syncFilesThreshold {
		s.st.syncs.Add(1)
		if err := s.hooks.syncfs(s.rootfd); err != nil {
			return fileErr("sync", s.root, err)
		}
		return nil
	}
	for _, fi := range files {
		fd, _, _, err := s.fds.acquire(fi, false, openOpts{})
		if err != nil {
			return err
		}
		s.st.syncs.Add(1)
		err = s.hooks.fdatasync(fd)
		s.fds.release(fi)
		if err != nil {
			return fileErr("sync", s.lay.files[fi].path, err)
		}
	}
	return nil
}

// removeMade removes what a failed Open created, newest first (a
// directory only if it is empty again).
func removeMade(made []string) {
	for i := len(made) - 1; i >= 0; i-- {
		_ = os.Remove(made[i])
	}
}

func (s *Store) newRecord(stamps []stamp, have bitfield.Bitfield) *record {
	return &record{infoHash: s.cfg.InfoHash, pieceLen: s.lay.pieceLen, total: s.lay.total,
		numPieces: s.lay.numPieces, stamps: stamps, have: have}
}

// NumPieces returns the torrent's piece count.
func (s *Store) NumPieces() int { return s.lay.numPieces }

// Have returns the BEP 3 bitfield of pieces recorded complete (written,
// synced and recorded, and still valid on disk when the store was opened).
func (s *Store) Have() []byte { return s.have.bitfield(s.lay.numPieces) }

// HasPiece reports whether piece p is recorded complete.
func (s *Store) HasPiece(p int) bool { return p >= 0 && p < s.lay.numPieces && s.have.has(p) }

// Complete reports whether every piece is recorded complete.
func (s *Store) Complete() bool { return s.nHave.Load() == int64(s.lay.numPieces) }

// Written delivers each piece once it is written, synced and recorded, in
// order of completion. Pieces complete at Open are not delivered. The
// channel is buffered for every piece and closed by Close.
func (s *Store) Written() <-chan int { return s.written }

// Err returns the sticky fatal error (ENOSPC, EIO, ...) that stopped the
// store from accepting writes, or nil. It names the file.
func (s *Store) Err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

func (s *Store) setErr(err error) {
	s.errMu.Lock()
	first := s.err == nil
	if first {
		s.err = err
	}
	s.errMu.Unlock()
	if first {
		s.log.Error("piecestore: stopped accepting writes", "err", err)
	}
}

// Stats returns a snapshot of the counters.
func (s *Store) Stats() Stats {
	opens, peak := s.fds.stats()
	return Stats{
		BytesWritten:   s.st.bytesWritten.Load(),
		PiecesWritten:  s.st.piecesWritten.Load(),
		WriteCalls:     s.st.writeCalls.Load(),
		DirectBytes:    s.st.directBytes.Load(),
		Runs:           s.st.runs.Load(),
		Syncs:          s.st.syncs.Load(),
		Records:        s.st.records.Load(),
		QueuedBytes:    s.writeBudget.queued(),
		PiecesComplete: int(s.nHave.Load()),
		Dropped:        s.st.dropped.Load(),
		CheckedAtOpen:  s.st.checked.Load(),
		FileOpens:      opens,
		PeakOpenFiles:  peak,
		WriteLatency:   s.st.writeTime.snapshot(),
		SyncLatency:    s.st.syncTime.snapshot(),
	}
}

// GetBuffer returns a buffer of piece p's length (capacity: the torrent's
// piece length) from the store's small pool, or a new one. Hand it to Submit
// (which returns it to the pool after writing) or back with PutBuffer.
func (s *Store) GetBuffer(p int) []byte {
	n := s.lay.pieceSize(p)
	if n == 0 {
		return nil
	}
	return s.pool.Get(int(n))
}

// PutBuffer returns a buffer obtained from GetBuffer (e.g. a piece that
// failed its hash) to the pool. The caller must not use it afterwards.
func (s *Store) PutBuffer(b []byte) {
	if s.Complete() {
		return // a complete store needs no more buffers: they go to the GC
	}
	s.pool.Put(b)
}

// Submit queues piece p's data, already SHA-1 verified by the caller, for
// writing. On success the store owns data (it goes back to the pool after
// the write); on error the caller keeps it. Submit blocks while the queued
// bytes exceed Config.WriteBudget (back-pressure) until room is made, ctx is
// done or the store is closed. A nil return means accepted, not durable:
// durability is reported on Written. Submitting a piece that is already
// complete is a no-op.
func (s *Store) Submit(ctx context.Context, p int, data []byte) error {
	n := s.lay.pieceSize(p)
	if n == 0 || int64(len(data)) != n {
		return fmt.Errorf("%w: piece %d with %d bytes (want %d)", ErrBadPiece, p, len(data), n)
	}
	if err := s.Err(); err != nil {
		return err
	}
	select {
	case <-s.closing:
		return ErrClosed
	default:
	}
	if s.have.has(p) {
		s.PutBuffer(data)
		return nil
	}
	if err := s.writeBudget.acquire(ctx, n, s.closing); err != nil {
		return err
	}
	s.submitMu.RLock()
	defer s.submitMu.RUnlock()
	if s.closed {
		s.writeBudget.release(n)
		return ErrClosed
	}
	// Never blocks: the budget admits at most cap(submitCh) pieces.
	s.submitCh <- pieceReq{piece: p, data: data}
	return nil
}

// Close writes everything queued, syncs, records and stops the writer; it
// then closes the files. It returns the sticky error, if any (what was
// durably written before it is still recorded). Close is idempotent.
func (s *Store) Close() error {
	s.shutdown(false)
	return s.closeErr
}

// kill simulates a crash (kill -9) for tests: the goroutines stop at once,
// nothing queued is written, nothing more is synced or recorded.
func (s *Store) kill() { s.shutdown(true) }

func (s *Store) shutdown(kill bool) {
	s.closeOnce.Do(func() {
		s.submitMu.Lock()
		s.closed = true
		s.submitMu.Unlock()
		if kill {
			close(s.killed)
		}
		close(s.closing)
		<-s.writerDone
		<-s.syncerDone
		s.closeFiles()
		s.closeErr = s.Err()
	})
}

func (s *Store) closeFiles() {
	s.fdMu.Lock()
	defer s.fdMu.Unlock()
	if s.fdsClosed {
		return
	}
	s.fdsClosed = true
	s.fds.closeAll()
	s.rec.close()
	unix.Close(s.rootfd)
}
