package delegate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"flotilla/internal/bitfield"
	"flotilla/internal/bufpool"
	"flotilla/internal/directio"
	"flotilla/metainfo"
	"flotilla/peerswarm"
	"flotilla/swarm"
)

// localWorker is the node's default worker: the same peerswarm.Swarm the
// coordinator runs, over a nodeStore. Two things differ from the
// coordinator's use of it:
//
//   - Pieces are stored at the coordinator. A delivered piece is also
//     written to the node's store so that the node can upload it (DESIGN:
//     nodes upload what they hold); Have from the coordinator is passed
//     on only for pieces the node holds, and the others are revoked
//     locally (the node stops downloading them but does not advertise
//     what it cannot serve). Revoked events for those local revocations
//     are not passed on.
//   - Nobody submits to Storage: the node calls Release once a piece was
//     shipped (or dropped), which passes on to the swarm's Release: the
//     piece's buffer no longer counts against MaxInFlightBytes. A
//     coordinator that takes no pieces therefore stops the node's swarm
//     once its in-flight budget is used.
type localWorker struct {
	ls    *peerswarm.Swarm
	store *nodeStore
	log   *slog.Logger

	events chan swarm.WorkerEvent
	quit   chan struct{}
	done   chan struct{}
	once   sync.Once

	mu      sync.Mutex
	dropped map[int]bool // pieces stored at the coordinator that we do not hold
	// leased are the pieces assigned and not yet delivered or given back,
	// kept here rather than read from the swarm's Status, which lags by
	// up to a status interval: Keep waits for them.
	leased map[int]bool

	// Keeping pieces across sessions (kept.go).
	ih       [20]byte
	keepers  *keepers
	kept     []int         // adopted kept pieces to verify and ship (pump)
	nKept    int           // of them shipped
	keptOut  map[int]bool  // kept pieces shipped, not yet released (mu)
	detached chan struct{} // closed by Keep: pieces are stored, not forwarded
}

func newLocalWorker(cfg ServerConfig, job Job, log *slog.Logger, k *keepers, removals *sync.WaitGroup) (*localWorker, error) {
	k.wait(job.InfoHash, keepGrace+time.Second) // a lost session of this torrent is still keeping
	store, err := openNodeStore(cfg.DataDir, job)
	if err != nil {
		return nil, err
	}
	store.removals = removals
	if err := checkRoom(cfg.DataDir, job.Info.PieceLength); err != nil {
		store.Close() // before adopting: kept pieces wait for a job with room
		return nil, err
	}
	kept, err := adoptKept(cfg.DataDir, job.InfoHash, job.Info.NumPieces(), store.path)
	if err != nil {
		log.Warn("cannot use the pieces kept from an earlier session", "err", err)
	}
	if len(kept) > 0 {
		// The adopted file replaced the job's empty one.
		store.closeDirect()
		store.f.Close()
		if store.f, err = os.OpenFile(store.path, os.O_RDWR, 0o600); err != nil {
			return nil, fmt.Errorf("delegate: kept pieces file: %w", err)
		}
		store.openDirect()
		if err := store.f.Truncate(job.Info.Length); err != nil {
			store.Close()
			return nil, fmt.Errorf("delegate: kept pieces file: %w", err)
		}
		log.Info("adopting pieces kept from an earlier session", "pieces", len(kept))
	}
	sc := cfg.Swarm
	sc.Info, sc.InfoHash, sc.PeerID, sc.Storage = job.Info, job.InfoHash, job.PeerID, store
	store.pool = bufpool.New(job.Info.PieceLength, int(sc.MaxInFlightBytes/job.Info.PieceLength)+cfg.DataStreams+1)
	sc.InfoBytes = job.InfoBytes
	sc.Listener, sc.ListenAddr, sc.Logger = nil, "", log
	if job.Encryption != nil {
		sc.Encryption = *job.Encryption // the coordinator's setting wins
	}
	// sc.MaxPeers is the job's share of the node's peers (Server.newWorker);
	// it changes as jobs start and end (SetMaxPeers).
	if cfg.PeerListen != "" {
		ln, err := net.Listen("tcp", cfg.PeerListen)
		if err != nil {
			// Busy (another job runs): same IP, any port.
			host, _, herr := net.SplitHostPort(cfg.PeerListen)
			if herr != nil {
				store.Close()
				return nil, fmt.Errorf("delegate: peer listen %q: %w", cfg.PeerListen, herr)
			}
			if ln, err = net.Listen("tcp", net.JoinHostPort(host, "0")); err != nil {
				store.Close()
				return nil, fmt.Errorf("delegate: peer listen: %w", err)
			}
		}
		sc.Listener = ln
	}
	ls, err := peerswarm.New(sc)
	if err != nil {
		if sc.Listener != nil {
			sc.Listener.Close()
		}
		store.Close()
		return nil, err
	}
	w := &localWorker{ls: ls, store: store, log: log, events: make(chan swarm.WorkerEvent),
		quit: make(chan struct{}), done: make(chan struct{}), dropped: map[int]bool{}, leased: map[int]bool{},
		ih: job.InfoHash, keepers: k, kept: kept, keptOut: map[int]bool{}, detached: make(chan struct{})}
	go w.pump()
	return w, nil
}

func (w *localWorker) pump() {
	defer close(w.done)
	defer close(w.events)
	if !w.shipKept(w.log) {
		for ev := range w.ls.Events() { // closed: drain until the swarm stops
			if ev.Kind == swarm.EventPiece {
				w.ls.Release(ev.Piece)
			}
		}
		return
	}
	var full error // the disk filled: the job fails (nodedisk.go)
	for ev := range w.ls.Events() {
		w.settled(ev)
		if full != nil { // failed: drain until Close
			if ev.Kind == swarm.EventPiece {
				w.ls.Release(ev.Piece)
			}
			continue
		}
		switch ev.Kind {
		case swarm.EventPiece:
			if err := w.store.put(ev.Piece, ev.Data); errors.Is(err, ErrNodeDiskFull) {
				// The piece itself is good (verified, in memory): it is
				// shipped, but the node stops here.
				full = err
			} else if err != nil {
				w.log.Warn("cannot keep piece for upload", "piece", ev.Piece, "err", err)
			}
		case swarm.EventRevoked:
			w.mu.Lock()
			back := ev.Pieces[:0:0]
			for _, p := range ev.Pieces {
				if !w.dropped[p] {
					back = append(back, p)
				}
			}
			w.mu.Unlock()
			if len(back) == 0 && len(ev.Pieces) > 0 && len(ev.Kept) == 0 {
				continue // the answer to our own revocation (Have)
			}
			ev.Pieces = back
		}
		select {
		case w.events <- ev:
		case <-w.quit:
			if ev.Kind == swarm.EventPiece {
				w.Release(ev.Piece)
			}
		case <-w.detached: // the session is lost: the piece is kept (stored above)
			if ev.Kind == swarm.EventPiece {
				w.Release(ev.Piece)
			}
		}
		if full != nil {
			w.ls.Revoke(allPieceIndices(w.store.info.NumPieces()), true) // download nothing more
			select {
			case w.events <- swarm.WorkerEvent{Kind: swarm.EventFailed, Err: full}:
			case <-w.quit:
			case <-w.detached:
			}
		}
	}
}

func allPieceIndices(n int) []int {
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	return all
}

// Addr is the swarm's BitTorrent listen address, or nil.
func (w *localWorker) Addr() net.Addr { return w.ls.Addr() }

func (w *localWorker) Name() string                     { return w.ls.Name() }
func (w *localWorker) Events() <-chan swarm.WorkerEvent { return w.events }
func (w *localWorker) Status() swarm.WorkerStatus       { return w.ls.Status() }
func (w *localWorker) Revoke(pieces []int, force bool)  { w.ls.Revoke(pieces, force) }
func (w *localWorker) AddPeers(addrs []netip.AddrPort)  { w.ls.AddPeers(addrs) }

// SetMaxPeers changes the swarm's peer cap (the job's share of the
// node's peers, peerbudget.go).
func (w *localWorker) SetMaxPeers(n int) { w.ls.SetMaxPeers(n) }

// Assign implements swarm.Worker.
func (w *localWorker) Assign(pieces []int) {
	w.mu.Lock()
	for _, p := range pieces {
		w.leased[p] = true
	}
	w.mu.Unlock()
	w.ls.Assign(pieces)
}

// settled takes delivered and given-back pieces off the lease.
func (w *localWorker) settled(ev swarm.WorkerEvent) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch ev.Kind {
	case swarm.EventPiece:
		delete(w.leased, ev.Piece)
	case swarm.EventRevoked:
		for _, p := range ev.Pieces {
			delete(w.leased, p)
		}
	}
}

// inFlight is how many leased pieces are neither delivered nor given back.
func (w *localWorker) inFlight() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.leased)
}

// Have passes on the pieces the node holds and revokes the others.
func (w *localWorker) Have(pieces []int) {
	w.store.coordinatorStored(pieces)
	var held, other []int
	for _, p := range pieces {
		if w.store.has(p) {
			held = append(held, p)
		} else {
			other = append(other, p)
		}
	}
	if len(other) > 0 {
		w.mu.Lock()
		for _, p := range other {
			w.dropped[p] = true
		}
		w.mu.Unlock()
		w.ls.Revoke(other, true)
	}
	if len(held) > 0 {
		w.store.confirm(held)
		w.ls.Have(held)
	}
}

// Release implements swarm.Worker.
func (w *localWorker) Release(p int) {
	w.mu.Lock()
	kept := w.keptOut[p]
	delete(w.keptOut, p)
	w.mu.Unlock()
	if !kept { // kept pieces never counted against the swarm's budget
		w.ls.Release(p)
	}
}

// GetBuffer and PutBuffer implement swarm.BufferPool with the store's
// pool (the swarm finds it on its Storage; the session gives buffers back
// through the worker).
func (w *localWorker) GetBuffer(p int) []byte { return w.store.GetBuffer(p) }

// PutBuffer: see GetBuffer.
func (w *localWorker) PutBuffer(b []byte) { w.store.PutBuffer(b) }

// Close stops the swarm and removes the job's data.
func (w *localWorker) Close() error {
	w.once.Do(func() {
		close(w.quit)
		w.ls.Close()
		<-w.done
		w.store.Close()
	})
	return nil
}

// nodeStore is a node's swarm.Storage: one sparse file per job in which
// delivered pieces are kept for uploading. It is a cache, not a record:
// nothing is synced, and the file is removed when the job ends (the
// coordinator holds the download).
type nodeStore struct {
	info *metainfo.Info
	path string
	f    *os.File
	// dfd is an O_DIRECT descriptor of f (-1: none) for the pieces whose
	// offset, length and buffer meet its alignment, align: written
	// through the page cache, a node's pieces cost it a third of its CPU
	// at 8 hosts (issue 15), and the node reads them back only to upload.
	// Owned by the writer (put); set up by openDirect.
	dfd   int
	align int64
	// removals, if set, counts the background removal of the file at
	// Close (the server waits for them).
	removals *sync.WaitGroup

	mu        sync.RWMutex
	have      bitfield.Bitfield
	confirmed bitfield.Bitfield // pieces held here the coordinator said it stored (Have)
	stored    bitfield.Bitfield // every piece the coordinator said it stored
	err       error

	// pool recycles piece buffers (swarm.BufferPool): the swarm takes
	// them for the pieces it downloads, the session gives them back once
	// a piece was shipped. Without it every piece was a fresh buffer,
	// page-faulted in block by block and left to the collector: at 8
	// hosts, a third of a node's CPU (issue 15). Sized in newLocalWorker
	// to what the swarm may hold (MaxInFlightBytes) plus the pieces being
	// shipped. Switched off once the coordinator has stored every piece:
	// a node seeding a finished job (--seed) downloads nothing more and
	// need not hold a swarm's worth of buffers.
	pool *bufpool.Pool
}

var errNotHeld = errors.New("delegate: piece not held by this node")

func openNodeStore(dir string, job Job) (*nodeStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("delegate: data dir: %w", err)
	}
	path := filepath.Join(dir, fmt.Sprintf("job-%x-%016x.part", job.InfoHash, job.ID))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("delegate: job data file: %w", err)
	}
	n := job.Info.NumPieces()
	s := &nodeStore{info: job.Info, path: path, f: f, dfd: -1, have: bitfield.New(n), confirmed: bitfield.New(n), stored: bitfield.New(n),
		pool: bufpool.New(job.Info.PieceLength, 0)} // newLocalWorker sizes it
	s.openDirect()
	return s, nil
}

// openDirect opens the O_DIRECT descriptor of f, closing the one of an
// earlier f; without direct I/O (tmpfs, say) dfd stays -1.
func (s *nodeStore) openDirect() {
	s.closeDirect()
	s.dfd, s.align = directio.Open(int(s.f.Fd()))
}

func (s *nodeStore) closeDirect() {
	if s.dfd >= 0 {
		unix.Close(s.dfd)
		s.dfd = -1
	}
}

// writePiece writes a piece's data at off: with O_DIRECT when it is
// aligned, through the page cache otherwise, and from then on when the
// file system refuses a direct write after all.
func (s *nodeStore) writePiece(data []byte, off int64) error {
	if s.dfd >= 0 && directio.Aligned(data, off, s.align) {
		for len(data) > 0 {
			k, err := unix.Pwrite(s.dfd, data, off)
			if err == unix.EINTR {
				continue
			}
			if k <= 0 && err == unix.EINVAL {
				s.closeDirect()
				break
			}
			if err != nil {
				return &os.PathError{Op: "write", Path: s.path, Err: err}
			}
			if k == 0 {
				return &os.PathError{Op: "write", Path: s.path, Err: io.ErrShortWrite}
			}
			data, off = data[k:], off+int64(k)
		}
		if len(data) == 0 {
			return nil
		}
	}
	_, err := s.f.WriteAt(data, off)
	return err
}

// GetBuffer implements swarm.BufferPool: a buffer of piece p's length
// from the pool, or a new one.
func (s *nodeStore) GetBuffer(p int) []byte { return s.pool.Get(int(s.info.PieceLen(p))) }

// PutBuffer implements swarm.BufferPool: b, which nobody uses any more,
// goes back to the pool if there is room.
func (s *nodeStore) PutBuffer(b []byte) { s.pool.Put(b) }

func (s *nodeStore) has(p int) bool {
	if p < 0 || p >= s.info.NumPieces() {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.have.Has(p)
}

func (s *nodeStore) put(p int, data []byte) error {
	if p < 0 || p >= s.info.NumPieces() || int64(len(data)) != s.info.PieceLen(p) {
		return fmt.Errorf("delegate: piece %d of %d bytes does not fit", p, len(data))
	}
	if s.has(p) {
		return nil
	}
	if err := s.writePiece(data, s.info.PieceOffset(p)); err != nil {
		// A short write leaves part of the piece in the file, but its
		// bit stays clear: it is never uploaded, kept or shipped.
		err = diskFull(err, filepath.Dir(s.path))
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		return err
	}
	s.mu.Lock()
	s.have.Set(p)
	s.mu.Unlock()
	return nil
}

func (s *nodeStore) setHave(p int) {
	s.mu.Lock()
	s.have.Set(p)
	s.mu.Unlock()
}

// confirm records pieces held here that the coordinator stored: they
// need not be kept.
func (s *nodeStore) confirm(ps []int) {
	s.mu.Lock()
	for _, p := range ps {
		s.confirmed.Set(p)
	}
	s.mu.Unlock()
}

// coordinatorStored records pieces the coordinator stored, held here or
// not; once it has them all, the buffer pool is emptied for good.
func (s *nodeStore) coordinatorStored(ps []int) {
	s.mu.Lock()
	for _, p := range ps {
		if p >= 0 && p < s.info.NumPieces() {
			s.stored.Set(p)
		}
	}
	all := s.stored.Count() == s.info.NumPieces()
	s.mu.Unlock()
	if all {
		s.pool.Off()
	}
}

// Have implements swarm.Storage: nothing at the start of a job.
func (s *nodeStore) Have() []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return bytes.Clone(s.have)
}

// Submit implements swarm.Storage (the node's swarm runs without a
// sub-chief, so only tests call it).
func (s *nodeStore) Submit(_ context.Context, p int, data []byte) error { return s.put(p, data) }

// Written implements swarm.Storage; nothing is ever reported (no
// sub-chief reads it on a node).
func (s *nodeStore) Written() <-chan int { return nil }

// ReadBlock implements swarm.Storage for uploads of held pieces.
func (s *nodeStore) ReadBlock(p int, begin int64, buf []byte) (int, error) {
	if !s.has(p) {
		return 0, errNotHeld
	}
	if begin < 0 || begin+int64(len(buf)) > s.info.PieceLen(p) {
		return 0, fmt.Errorf("delegate: block %d+%d outside piece %d", begin, len(buf), p)
	}
	return s.f.ReadAt(buf, s.info.PieceOffset(p)+begin)
}

// Err implements swarm.Storage.
func (s *nodeStore) Err() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.err
}

// Close closes and removes the job's file.
//
// With removals set the file is removed in the background (counted
// there): on a file system mounted with discard, removing the blocks a
// job's direct writes allocated took a node 0.45 s at 8 hosts, which the
// node's answer to Stop, and so the coordinator's exit, waited for. A
// file left by a process that exits meanwhile is an orphan the next start
// removes (nodedisk.go).
func (s *nodeStore) Close() error {
	s.closeDirect()
	err := s.f.Close()
	if s.removals == nil {
		if rerr := os.Remove(s.path); err == nil {
			err = rerr
		}
		return err
	}
	s.removals.Add(1)
	go func() {
		defer s.removals.Done()
		os.Remove(s.path)
	}()
	return err
}
