package piecestore

import (
	"errors"
	"fmt"
	"io"

	"golang.org/x/sys/unix"
)

// ReadBlock reads len(buf) bytes of piece p starting at begin, for
// uploading. Only pieces recorded complete are served; a piece still in the
// write queue (or written but not yet synced and recorded) gets
// ErrNotComplete. It returns len(buf) on success.
func (s *Store) ReadBlock(p int, begin int64, buf []byte) (int, error) {
	size := s.lay.pieceSize(p)
	if size == 0 {
		return 0, fmt.Errorf("%w: piece %d", ErrBadPiece, p)
	}
	if begin < 0 || begin > size || int64(len(buf)) > size-begin {
		return 0, fmt.Errorf("%w: piece %d begin %d length %d (piece has %d)", ErrBadRange, p, begin, len(buf), size)
	}
	if !s.have.has(p) {
		return 0, fmt.Errorf("%w: piece %d", ErrNotComplete, p)
	}
	if err := s.readAt(s.lay.pieceOffset(p)+begin, buf); err != nil {
		return 0, err
	}
	return len(buf), nil
}

// ReadPiece reads the whole of piece p into buf (grown if its capacity is
// too small) and returns it. Same rules as ReadBlock.
func (s *Store) ReadPiece(p int, buf []byte) ([]byte, error) {
	size := s.lay.pieceSize(p)
	if size == 0 {
		return nil, fmt.Errorf("%w: piece %d", ErrBadPiece, p)
	}
	if int64(cap(buf)) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	if _, err := s.ReadBlock(p, 0, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// readAt fills buf from the torrent's byte space at off. Padding reads as
// zeros. Safe for concurrent use; fails with ErrClosed after Close.
func (s *Store) readAt(off int64, buf []byte) error {
	s.fdMu.RLock()
	defer s.fdMu.RUnlock()
	if s.fdsClosed {
		return ErrClosed
	}
	return s.lay.spans(off, int64(len(buf)), func(fi int, fileOff, pos, n int64) error {
		f := &s.lay.files[fi]
		dst := buf[pos : pos+n]
		if !f.stored() {
			clear(dst)
			return nil
		}
		fd, _, _, err := s.fds.acquire(fi, false, openOpts{})
		if err != nil {
			return err
		}
		defer s.fds.release(fi)
		for len(dst) > 0 {
			k, err := unix.Pread(fd, dst, fileOff)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return fileErr("read", f.path, err)
			}
			if k == 0 {
				return fileErr("read", f.path, io.ErrUnexpectedEOF)
			}
			dst, fileOff = dst[k:], fileOff+int64(k)
		}
		return nil
	})
}
