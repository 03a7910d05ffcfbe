package piecestore

import (
	"errors"
	"fmt"
	"syscall"
)

var (
	// ErrDiskFull is matched (errors.Is) by a FileError caused by ENOSPC or
	// EDQUOT. The same error also matches syscall.ENOSPC (or EDQUOT).
	ErrDiskFull = errors.New("piecestore: disk full")
	// ErrIO is matched by a FileError caused by EIO.
	ErrIO = errors.New("piecestore: I/O error")
	// ErrClosed is returned by methods called after Close.
	ErrClosed = errors.New("piecestore: store closed")
	// ErrUnsafePath reports a torrent path that would leave the output
	// directory, a symlink on the way, or a non-regular file in the way.
	ErrUnsafePath = errors.New("piecestore: unsafe path")
	// ErrUnsafeLink reports a BEP 47 symlink entry whose target leaves the
	// output directory (or points into the store's .flotilla directory):
	// the torrent cannot be stored safely.
	ErrUnsafeLink = errors.New("piecestore: symlink entry points outside the output directory")
	// ErrInvalidInfo reports metainfo the store cannot map (inconsistent
	// geometry).
	ErrInvalidInfo = errors.New("piecestore: invalid info")
	// ErrBadPiece reports a piece index out of range or data of the wrong
	// length.
	ErrBadPiece = errors.New("piecestore: bad piece")
	// ErrNotComplete is returned by ReadBlock/ReadPiece for a piece that is
	// not recorded complete (including pieces still queued for writing).
	ErrNotComplete = errors.New("piecestore: piece not complete")
	// ErrBadRange reports a block outside its piece.
	ErrBadRange = errors.New("piecestore: block outside piece")
	// ErrInUse reports that another Store (in this or another process)
	// has the same torrent open in the same directory.
	ErrInUse = errors.New("piecestore: torrent already open in this directory")
	// ErrNoDescriptors is matched by a FileError caused by EMFILE or ENFILE:
	// the process (or the system) ran out of file descriptors.
	ErrNoDescriptors = errors.New("piecestore: out of file descriptors")
	// ErrConfig reports an invalid Config.
	ErrConfig = errors.New("piecestore: invalid config")
)

// FileError is an operating-system error on one file of the store. Its
// message names the file. errors.Is(err, ErrDiskFull) is true for ENOSPC and
// EDQUOT, errors.Is(err, ErrIO) for EIO, errors.Is(err, ErrNoDescriptors)
// for EMFILE and ENFILE; Unwrap returns the underlying
// error (usually a syscall.Errno).
type FileError struct {
	Op   string // "write", "sync", "create", "read", ...
	Path string // full path of the file
	Err  error
}

func (e *FileError) Error() string {
	s := fmt.Sprintf("piecestore: %s %s: %v", e.Op, e.Path, e.Err)
	switch {
	case errors.Is(e, ErrDiskFull):
		s += " (disk full: free space, then run again to resume)"
	case errors.Is(e, ErrIO):
		s += " (I/O error: check the disk)"
	case errors.Is(e.Err, syscall.EFBIG):
		s += " (the file system cannot hold a file this large: choose an output directory on another file system)"
	case errors.Is(e, ErrNoDescriptors):
		s += " (out of file descriptors: raise the limit with ulimit -n or close other programs, then run again)"
	}
	return s
}

// Unwrap returns the underlying error.
func (e *FileError) Unwrap() error { return e.Err }

// Is reports whether the error matches ErrDiskFull or ErrIO.
func (e *FileError) Is(target error) bool {
	switch target {
	case ErrDiskFull:
		return errors.Is(e.Err, syscall.ENOSPC) || errors.Is(e.Err, syscall.EDQUOT)
	case ErrIO:
		return errors.Is(e.Err, syscall.EIO)
	case ErrNoDescriptors:
		return errors.Is(e.Err, syscall.EMFILE) || errors.Is(e.Err, syscall.ENFILE)
	}
	return false
}

func fileErr(op, path string, err error) error {
	if err == nil {
		return nil
	}
	return &FileError{Op: op, Path: path, Err: err}
}
