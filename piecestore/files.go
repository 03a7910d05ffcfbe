package piecestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Files are opened with *at system calls relative to a descriptor of the
// output directory, one path component at a time, with O_NOFOLLOW: no
// symlink anywhere below Dir is followed (a symlink in a torrent's path is
// refused, wherever it points), and non-regular files are refused. The
// lexical checks in layout.go are a second, independent line of defence.

const dirOpenFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// openRoot creates dir if needed and returns a descriptor for it. Every
// directory it creates is appended to made (outermost first).
func openRoot(dir string, made *[]string) (int, error) {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || d == filepath.Dir(d) {
			break
		}
		missing = append(missing, d)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return -1, fmt.Errorf("piecestore: create output directory: %w", err)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		*made = append(*made, missing[i])
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fileErr("open output directory", dir, err)
	}
	return fd, nil
}

// openDirAt opens (creating it if create and missing) the directory name
// inside dirfd without following a symlink. path is the directory's full
// path, for messages; a created directory is appended to made (if not nil).
func openDirAt(dirfd int, name, path string, create bool, made *[]string) (int, error) {
	fd, err := unix.Openat(dirfd, name, dirOpenFlags, 0)
	if errors.Is(err, unix.ENOENT) && create {
		err = unix.Mkdirat(dirfd, name, 0o755)
		switch {
		case err == nil:
			if made != nil {
				*made = append(*made, path)
			}
		case !errors.Is(err, unix.EEXIST):
			return -1, fileErr("create directory", path, err)
		}
		fd, err = unix.Openat(dirfd, name, dirOpenFlags, 0)
	}
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		return -1, fmt.Errorf("%w: %s is a symlink or not a directory", ErrUnsafePath, path)
	}
	if err != nil {
		return -1, fileErr("open directory", path, err)
	}
	return fd, nil
}

// openOpts says how openFileAt treats a missing file.
type openOpts struct {
	create     bool      // create the file and missing directories
	keepParent bool      // also return a descriptor of the parent directory
	made       *[]string // if not nil, created paths are appended (for cleanup)
}

// walkParent opens the parent directory of comps beneath rootfd, one
// component at a time without following symlinks, creating missing ones if
// o.create. It returns rootfd itself for a top-level name (the caller must
// not close it then).
func walkParent(rootfd int, comps []string, path string, o openOpts) (int, error) {
	dirfd := rootfd
	// The full path of each directory, for messages: strip the trailing
	// components from the file's path.
	dirPaths := make([]string, len(comps))
	d := path
	for k := len(comps) - 1; k >= 0; k-- {
		dirPaths[k] = d
		d = filepath.Dir(d)
	}
	for k, c := range comps[:len(comps)-1] {
		next, err := openDirAt(dirfd, c, dirPaths[k], o.create, o.made)
		if dirfd != rootfd {
			unix.Close(dirfd)
		}
		if err != nil {
			return -1, err
		}
		dirfd = next
	}
	return dirfd, nil
}

// openFileAt opens (or, with o.create, creates) the regular file reached by
// comps beneath rootfd. It returns the descriptor, whether the file was
// created, and the descriptor of its parent directory if o.keepParent
// (else -1).
func openFileAt(rootfd int, comps []string, path string, o openOpts) (fd int, created bool, parent int, err error) {
	dirfd, err := walkParent(rootfd, comps, path, o)
	if err != nil {
		return -1, false, -1, err
	}
	parent = -1
	defer func() {
		if dirfd != rootfd && (dirfd != parent || err != nil) {
			unix.Close(dirfd)
		}
	}()
	name := comps[len(comps)-1]
	var st unix.Stat_t
	switch err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); {
	case err == nil:
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			return -1, false, -1, fmt.Errorf("%w: %s is a symlink or not a regular file", ErrUnsafePath, path)
		}
	case errors.Is(err, unix.ENOENT) && o.create:
		created = true
	default:
		return -1, false, -1, fileErr("stat", path, err)
	}
	flags := unix.O_RDWR | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NONBLOCK
	if created {
		flags |= unix.O_CREAT | unix.O_EXCL
	}
	fd, err = unix.Openat(dirfd, name, flags, 0o644)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EEXIST) {
		return -1, false, -1, fmt.Errorf("%w: %s is a symlink or appeared while opening", ErrUnsafePath, path)
	}
	if err != nil {
		return -1, false, -1, fileErr("open", path, err)
	}
	if created && o.made != nil {
		*o.made = append(*o.made, path)
	}
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return -1, false, -1, fmt.Errorf("%w: %s is not a regular file", ErrUnsafePath, path)
	}
	if o.keepParent {
		if dirfd == rootfd {
			parent, err = unix.Dup(rootfd)
			if err != nil {
				unix.Close(fd)
				return -1, false, -1, fileErr("dup", path, err)
			}
		} else {
			parent = dirfd
		}
	}
	return fd, created, parent, nil
}

// makeSymlinkAt creates the symlink reached by comps beneath rootfd (a BEP
// 47 symlink entry) with the given target text, creating missing
// directories without following symlinks. An existing link with the same
// target is kept; anything else in the way is refused.
func makeSymlinkAt(rootfd int, comps []string, path, target string, made *[]string) error {
	dirfd, err := walkParent(rootfd, comps, path, openOpts{create: true, made: made})
	if err != nil {
		return err
	}
	if dirfd != rootfd {
		defer unix.Close(dirfd)
	}
	name := comps[len(comps)-1]
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(dirfd, name, buf)
	switch {
	case err == nil && string(buf[:n]) == target:
		return nil
	case err == nil:
		return fmt.Errorf("%w: %s is a symlink to %q; the torrent has it point to %q (remove it, then run again)", ErrUnsafePath, path, buf[:n], target)
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("%w: %s exists and is not a symlink; the torrent has a symlink there (remove it, then run again)", ErrUnsafePath, path)
	case !errors.Is(err, unix.ENOENT):
		return fileErr("readlink", path, err)
	}
	if err := unix.Symlinkat(target, dirfd, name); err != nil {
		return fileErr("create symlink", path, err)
	}
	*made = append(*made, path)
	return nil
}

// fstamp returns the size and modification time (ns) of fd.
func fstamp(fd int) (stamp, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return stamp{}, err
	}
	return stamp{size: st.Size, mtime: st.Mtim.Nano()}, nil
}

// sizeFile gives fd exactly length bytes: fallocate when prealloc (falling
// back to ftruncate where unsupported), else a sparse ftruncate.
func sizeFile(fd int, cur, length int64, prealloc bool) error {
	if prealloc && cur < length {
		err := unix.Fallocate(fd, 0, 0, length)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
			return err
		}
	}
	return unix.Ftruncate(fd, length)
}
