package piecestore

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"runtime"
	"sync"

	"flotilla/internal/bitfield"
)

// Hashing reads: hashBuffers buffers of hashChunk bytes.
const (
	hashChunk   = 2 << 20
	hashBuffers = 3
)

// Verify re-hashes every piece from disk (SHA-1, large sequential reads)
// and makes the record and Have match what is really there: good pieces are
// added (and delivered on Written if new), bad ones dropped. Pieces that
// are recorded while Verify runs are kept. progress, if not nil, is called
// on the caller's goroutine after each piece. A hash mismatch is not an
// error; read errors and ctx are.
func (s *Store) Verify(ctx context.Context, progress func(done, total int)) error {
	n := s.lay.numPieces
	if n == 0 {
		return nil
	}
	mark := bitfield.New(n)
	if err := s.control(verifyCmd{op: opMark, mark: mark}); err != nil {
		return err
	}
	good := make(bitfield.Bitfield, len(mark))
	err := s.hashPieces(ctx, func(int) bool { return true }, progress, func(p int, ok bool) {
		if ok {
			good.Set(p)
		}
	})
	if err != nil {
		_ = s.control(verifyCmd{op: opCancel, mark: mark})
		return err
	}
	return s.control(verifyCmd{op: opApply, mark: mark, good: good})
}

func (s *Store) control(c verifyCmd) error {
	c.reply = make(chan error, 1)
	select {
	case s.ctlCh <- c:
	case <-s.closing:
		return ErrClosed
	case <-s.syncerDone:
		return ErrClosed
	}
	return <-c.reply
}

// hashPieces hashes every piece p for which want(p) holds and calls fn
// with the verdict (fn and progress are called one at a time, from the
// hashing goroutines). The wanted pieces are split into up to
// GOMAXPROCS contiguous shares hashed in parallel; within a share,
// consecutive wanted pieces are read as one stream in large reads by a
// reader goroutine, so that disk reads overlap hashing. Memory is
// hashBuffers × hashChunk per share.
func (s *Store) hashPieces(ctx context.Context, want func(int) bool, progress func(done, total int), fn func(p int, ok bool)) error {
	l := s.lay
	var runs [][2]int // [first, last+1) of wanted pieces
	total := 0
	for p := 0; p < l.numPieces; p++ {
		if !want(p) {
			continue
		}
		total++
		if k := len(runs); k > 0 && runs[k-1][1] == p {
			runs[k-1][1]++
		} else {
			runs = append(runs, [2]int{p, p + 1})
		}
	}
	if total == 0 {
		return nil
	}
	// Shares of at least 64 MiB (or the whole), at most one per CPU.
	shares := int(min(int64(runtime.GOMAXPROCS(0)), max(int64(total)*l.pieceLen/(64<<20), 1), 8))
	per := (total + shares - 1) / shares
	var groups [][][2]int
	var cur [][2]int
	n := 0
	for _, r := range runs {
		for r[0] < r[1] {
			k := min(r[1]-r[0], per-n)
			cur = append(cur, [2]int{r[0], r[0] + k})
			r[0] += k
			if n += k; n == per {
				groups, cur, n = append(groups, cur), nil, 0
			}
		}
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	done := 0
	report := func(p int, ok bool) {
		mu.Lock()
		defer mu.Unlock()
		fn(p, ok)
		done++
		if progress != nil {
			progress(done, total)
		}
	}
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = s.hashRuns(ctx, g, report); errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return errors.Join(errs...)
}

// hashRuns hashes the pieces of runs ([first, last+1) ranges, in order)
// with one reader goroutine feeding large sequential reads.
func (s *Store) hashRuns(ctx context.Context, runs [][2]int, report func(p int, ok bool)) error {
	l := s.lay
	span := func(r [2]int) (int64, int64) {
		return l.pieceOffset(r[0]), l.pieceOffset(r[1]-1) + l.pieceSize(r[1]-1)
	}
	type chunk struct {
		b   []byte
		err error
	}
	free := make(chan []byte, hashBuffers)
	for range hashBuffers {
		free <- make([]byte, min(hashChunk, l.total))
	}
	full := make(chan chunk, hashBuffers)
	stop, readerDone := make(chan struct{}), make(chan struct{})
	defer func() {
		close(stop)
		<-readerDone
	}()
	go func() { // the reader: same order as the hashing loop below
		defer close(readerDone)
		for _, r := range runs {
			for off, end := span(r); off < end; {
				var b []byte
				select {
				case b = <-free:
				case <-stop:
					return
				}
				b = b[:min(int64(cap(b)), end-off)]
				err := s.readAt(off, b)
				select {
				case full <- chunk{b, err}:
				case <-stop:
					return
				}
				if err != nil {
					return
				}
				off += int64(len(b))
			}
		}
	}()

	h := sha1.New()
	var sum [sha1.Size]byte
	for _, r := range runs {
		off, end := span(r)
		cur, curEnd := r[0], off+l.pieceSize(r[0])
		h.Reset()
		for off < end {
			var c chunk
			select {
			case c = <-full:
			case <-ctx.Done():
				return ctx.Err()
			}
			if c.err != nil {
				return c.err
			}
			for b := c.b; len(b) > 0; {
				k := min(int64(len(b)), curEnd-off)
				h.Write(b[:k])
				b, off = b[k:], off+k
				if off == curEnd {
					report(cur, bytes.Equal(h.Sum(sum[:0]), l.pieceHash(cur)))
					h.Reset()
					cur++
					if cur < r[1] {
						curEnd += l.pieceSize(cur)
					}
				}
			}
			free <- c.b
		}
	}
	return ctx.Err()
}
