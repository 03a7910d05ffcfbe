package piecestore

import (
	"bytes"
	"context"
	"crypto/sha1"
)

// hashChunk is the read size when hashing: large sequential reads.
const hashChunk = 4 << 20

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
	mark := make([]byte, (n+7)/8)
	if err := s.control(verifyCmd{op: opMark, mark: mark}); err != nil {
		return err
	}
	good := make([]byte, len(mark))
	err := s.hashPieces(ctx, func(int) bool { return true }, progress, func(p int, ok bool) {
		if ok {
			bfSet(good, p)
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
// with the verdict. Consecutive wanted pieces are read as one stream in
// hashChunk reads.
func (s *Store) hashPieces(ctx context.Context, want func(int) bool, progress func(done, total int), fn func(p int, ok bool)) error {
	l := s.lay
	total := 0
	for p := range l.numPieces {
		if want(p) {
			total++
		}
	}
	if total == 0 {
		return nil
	}
	buf := make([]byte, min(hashChunk, l.total))
	h := sha1.New()
	var sum [sha1.Size]byte
	done := 0
	for p := 0; p < l.numPieces; {
		if !want(p) {
			p++
			continue
		}
		q := p + 1
		for q < l.numPieces && want(q) {
			q++
		}
		off, end := l.pieceOffset(p), l.pieceOffset(q-1)+l.pieceSize(q-1)
		cur, curEnd := p, off+l.pieceSize(p)
		h.Reset()
		for off < end {
			if err := ctx.Err(); err != nil {
				return err
			}
			b := buf[:min(int64(len(buf)), end-off)]
			if err := s.readAt(off, b); err != nil {
				return err
			}
			for len(b) > 0 {
				k := min(int64(len(b)), curEnd-off)
				h.Write(b[:k])
				b, off = b[k:], off+k
				if off == curEnd {
					fn(cur, bytes.Equal(h.Sum(sum[:0]), l.pieceHash(cur)))
					done++
					if progress != nil {
						progress(done, total)
					}
					h.Reset()
					cur++
					if cur < q {
						curEnd += l.pieceSize(cur)
					}
				}
			}
		}
		p = q
	}
	return nil
}
