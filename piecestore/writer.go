package piecestore

import (
	"errors"
	"io"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"flotilla/internal/bitfield"
	"flotilla/internal/directio"
)

const (
	maxIovecs = 1024     // IOV_MAX on Linux
	maxRun    = 64 << 20 // bytes per coalesced run
)

type pieceReq struct {
	piece int
	data  []byte
}

// syncBatch is the set of pieces written since the last hand-over to the
// syncer, with the files they touched.
type syncBatch struct {
	pieces []int
	files  []int // distinct stored files
	bytes  int64
}

// writer is the I/O goroutine: the only goroutine that writes piece data. It
// owns the queue of verified pieces and builds the write plan from it:
// every time it wakes it takes everything queued, sorts it by offset,
// coalesces adjacent pieces into runs and writes each run's part in each
// file with one pwritev (split only at IOV_MAX). Written pieces are
// batched for the syncer.
type writer struct {
	s         *Store
	queue     []pieceReq
	queued    bitfield.Bitfield // bitfield: in queue or in the pending batch (dedup)
	ever      bitfield.Bitfield // bitfield: written this session or complete at open
	remaining int               // pieces neither complete at open nor written yet
	pending   *syncBatch
	inBatch   []bool // per file: already in pending.files
	due       bool
	timer     *time.Timer
	timerOn   bool
	iovs      [][]byte
	failed    bool
}

func newWriter(s *Store) *writer {
	n := s.lay.numPieces
	w := &writer{
		s:       s,
		queued:  bitfield.New(n),
		ever:    s.have.bitfield(n),
		inBatch: make([]bool, len(s.lay.files)),
		timer:   time.NewTimer(time.Hour),
	}
	w.timer.Stop()
	w.remaining = n - int(s.nHave.Load())
	return w
}

func (w *writer) run() {
	s := w.s
	defer close(s.writerDone)
	defer w.timer.Stop()
	for {
		var syncOut chan<- *syncBatch
		if w.pending != nil && w.due {
			syncOut = s.syncCh
		}
		var timerC <-chan time.Time
		if w.timerOn {
			timerC = w.timer.C
		}
		select {
		case r := <-s.submitCh:
			w.accept(r)
			w.drain()
			w.flush()
		case syncOut <- w.pending:
			w.handedOver()
		case <-timerC:
			w.timerOn = false
			w.due = true
		case <-s.closing:
			select {
			case <-s.killed:
				close(s.syncCh)
				return
			default:
			}
			w.drain()
			w.flush()
			if w.pending != nil {
				select {
				case s.syncCh <- w.pending:
					w.handedOver()
				case <-s.killed:
				}
			}
			close(s.syncCh)
			return
		case <-s.killed:
			close(s.syncCh)
			return
		}
	}
}

func (w *writer) handedOver() {
	for _, p := range w.pending.pieces {
		w.queued.Clear(p)
	}
	for _, f := range w.pending.files {
		w.inBatch[f] = false
	}
	w.pending = nil
	w.due = false
	if w.timerOn {
		w.timer.Stop()
		w.timerOn = false
	}
}

// drain takes everything already submitted without blocking.
func (w *writer) drain() {
	for {
		select {
		case r := <-w.s.submitCh:
			w.accept(r)
		default:
			return
		}
	}
}

func (w *writer) accept(r pieceReq) {
	if w.failed || w.queued.Has(r.piece) || w.s.have.has(r.piece) || w.s.Err() != nil {
		w.release(r)
		return
	}
	w.queued.Set(r.piece)
	w.queue = append(w.queue, r)
}

// release gives a piece's budget and buffer back.
func (w *writer) release(r pieceReq) {
	w.s.writeBudget.release(int64(len(r.data)))
	w.s.PutBuffer(r.data)
}

// flush executes the write plan for everything queued.
func (w *writer) flush() {
	q := w.queue
	if len(q) == 0 {
		return
	}
	slices.SortFunc(q, func(a, b pieceReq) int { return a.piece - b.piece })
	for i := 0; i < len(q); {
		j, size := i+1, int64(len(q[i].data))
		for j < len(q) && q[j].piece == q[j-1].piece+1 && size+int64(len(q[j].data)) <= maxRun {
			size += int64(len(q[j].data))
			j++
		}
		run := q[i:j]
		var done int64 // bytes of the run written before an error
		var err error
		if !w.failed {
			done, err = w.writeRun(run, size)
		}
		if err != nil {
			w.s.setErr(err)
			w.failed = true
			w.due = true // still record what was written before the error
		}
		for _, r := range run {
			n := int64(len(r.data))
			if done >= n {
				done -= n
				w.written(r.piece, n)
			} else {
				done = 0
				w.queued.Clear(r.piece)
			}
			w.release(r)
		}
		i = j
	}
	clear(q)
	w.queue = q[:0]
	clear(w.iovs[:cap(w.iovs)])
}

// writeRun writes the contiguous pieces of run (size bytes in all). It
// returns how many bytes from the start of the run were written.
func (w *writer) writeRun(run []pieceReq, size int64) (int64, error) {
	s := w.s
	s.st.runs.Add(1)
	defer s.st.writeTime.since(time.Now())
	var done int64
	bi, bo := 0, 0 // cursor: buffer index, offset in it
	err := s.lay.spans(s.lay.pieceOffset(run[0].piece), size, func(fi int, fileOff, pos, n int64) error {
		iovs := w.iovs[:0]
		for rest := n; rest > 0; {
			b := run[bi].data[bo:]
			if int64(len(b)) > rest {
				b = b[:rest]
			}
			iovs = append(iovs, b)
			rest -= int64(len(b))
			bo += len(b)
			if bo == len(run[bi].data) {
				bi, bo = bi+1, 0
			}
		}
		w.iovs = iovs
		f := &s.lay.files[fi]
		if !f.stored() { // padding: verified zeros, not stored
			done = pos + n
			return nil
		}
		fd, dfd, _, err := s.fds.acquire(fi, f.dioAlign != 0, openOpts{})
		if err != nil {
			return err
		}
		k, err := w.writeFile(f, fd, dfd, iovs, fileOff, n)
		s.fds.release(fi)
		done = pos + k
		return err
	})
	return done, err
}

// writeFile writes iovs (n bytes) at off in f. With a direct descriptor it
// writes the aligned middle with O_DIRECT and the unaligned head and tail
// through the page cache; when a buffer of the middle is not aligned in
// memory or length (a file boundary inside a piece shifts them) the whole
// part goes through the page cache. It returns the bytes written from off.
func (w *writer) writeFile(f *fileEntry, fd, dfd int, iovs [][]byte, off, n int64) (int64, error) {
	if dfd < 0 || f.dioAlign <= 0 {
		return w.pwritevAll(f, fd, iovs, off)
	}
	a := f.dioAlign
	head := min((a-off%a)%a, n)
	mid := (n - head) / a * a
	if mid == 0 {
		return w.pwritevAll(f, fd, iovs, off)
	}
	headIovs, rest := splitIovs(iovs, head)
	midIovs, tailIovs := splitIovs(rest, mid)
	for _, b := range midIovs {
		if !directio.Aligned(b, 0, a) {
			return w.pwritevAll(f, fd, iovs, off)
		}
	}
	var done int64
	for _, part := range []struct {
		fd   int
		iovs [][]byte
	}{{fd, headIovs}, {dfd, midIovs}, {fd, tailIovs}} {
		if len(part.iovs) == 0 {
			continue
		}
		k, err := w.pwritevAll(f, part.fd, part.iovs, off+done)
		if part.fd == dfd {
			w.s.st.directBytes.Add(k)
			if k == 0 && errors.Is(err, unix.EINVAL) {
				// The file system turned down the direct write after all:
				// this file goes through the page cache from now on.
				w.s.log.Warn("piecestore: direct I/O refused; writing through the page cache", "file", f.path)
				f.dioAlign = 0
				k, err = w.pwritevAll(f, fd, part.iovs, off+done)
			}
		}
		done += k
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// splitIovs splits iovs after n bytes. The halves are fresh slices (the
// buffers are shared); a buffer straddling the cut is split in two.
func splitIovs(iovs [][]byte, n int64) (first, second [][]byte) {
	for i, b := range iovs {
		if n == 0 {
			return first, append(second, iovs[i:]...)
		}
		if int64(len(b)) <= n {
			first = append(first, b)
			n -= int64(len(b))
			continue
		}
		first = append(first, b[:n])
		second = append(second, b[n:])
		return first, append(second, iovs[i+1:]...)
	}
	return first, second
}

// pwritevAll writes all of iovs at off in fd (a descriptor of f), returning
// the bytes written.
func (w *writer) pwritevAll(f *fileEntry, fd int, iovs [][]byte, off int64) (int64, error) {
	s := w.s
	var total int64
	for len(iovs) > 0 {
		chunk := iovs[:min(len(iovs), maxIovecs)]
		n, err := s.hooks.pwritev(fd, chunk, off)
		s.st.writeCalls.Add(1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return total, fileErr("write", f.path, err)
		}
		if n <= 0 {
			return total, fileErr("write", f.path, io.ErrShortWrite)
		}
		s.st.bytesWritten.Add(int64(n))
		off += int64(n)
		total += int64(n)
		for n > 0 {
			if n >= len(iovs[0]) {
				n -= len(iovs[0])
				iovs = iovs[1:]
			} else {
				iovs[0] = iovs[0][n:]
				n = 0
			}
		}
	}
	return total, nil
}

// written adds a piece to the pending sync batch.
func (w *writer) written(p int, n int64) {
	s := w.s
	s.st.piecesWritten.Add(1)
	if w.pending == nil {
		w.pending = &syncBatch{}
		w.timer.Reset(s.cfg.SyncInterval)
		w.timerOn = true
	}
	b := w.pending
	b.pieces = append(b.pieces, p)
	b.bytes += n
	_ = s.lay.spans(s.lay.pieceOffset(p), n, func(fi int, _, _, _ int64) error {
		if s.lay.files[fi].stored() && !w.inBatch[fi] {
			w.inBatch[fi] = true
			b.files = append(b.files, fi)
		}
		return nil
	})
	if !w.ever.Has(p) {
		w.ever.Set(p)
		w.remaining--
	}
	if b.bytes >= s.cfg.SyncBytes || w.remaining <= 0 {
		w.due = true
	}
}
