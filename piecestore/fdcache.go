package piecestore

import (
	"errors"
	"fmt"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"flotilla/internal/directio"
)

// Descriptor budget: by default a quarter of the process's RLIMIT_NOFILE
// (the rest is for peers, trackers and the runtime), within these bounds.
const (
	minOpenFiles = 8
	maxOpenFiles = 4096
)

// defaultMaxOpenFiles returns a quarter of the soft RLIMIT_NOFILE, clamped
// to [minOpenFiles, maxOpenFiles].
func defaultMaxOpenFiles() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return 256
	}
	return int(min(max(rl.Cur/4, minOpenFiles), maxOpenFiles))
}

// fdCache keeps a bounded number of the torrent's files open, so that a
// torrent of any number of files works under a small RLIMIT_NOFILE. Users
// (the writer, the syncer, readers and Open) acquire a file's descriptors,
// use them and release them; a file nobody uses may be closed at any time
// to make room for another (least recently used first). The budget counts
// descriptors: a file with an O_DIRECT descriptor costs two. When every
// open file is in use the budget is exceeded rather than waited for (at
// most one file per concurrent user). If the kernel refuses an open for
// lack of descriptors (EMFILE/ENFILE: other parts of the process hold
// them), the idle files are closed, the open is retried once and the budget
// shrinks to what is open; if it still fails, the error matches
// ErrNoDescriptors.
//
// Closing a written file before its fdatasync is safe: the sync goes
// through another descriptor of the same inode, and since Linux 4.13 a
// writeback error not yet reported is reported to it.
type fdCache struct {
	lay    *layout
	rootfd int

	mu      sync.Mutex
	budget  int // descriptors
	open    int // descriptors open
	entries []fdEntry
	head    int // most recently released idle file, -1 if none
	tail    int // least recently released idle file, -1 if none
	closed  bool
	opens   int64 // files opened (tests and Stats)
	peak    int   // most descriptors open at once
}

type fdEntry struct {
	fd, dfd    int // -1 when closed
	refs       int // users holding the descriptors
	prev, next int // idle list links (refs == 0 and fd >= 0), -1 at the ends
	idle       bool
}

func newFDCache(lay *layout, rootfd, budget int) *fdCache {
	c := &fdCache{lay: lay, rootfd: rootfd, budget: max(budget, 1), head: -1, tail: -1}
	c.entries = make([]fdEntry, len(lay.files))
	for i := range c.entries {
		c.entries[i] = fdEntry{fd: -1, dfd: -1, prev: -1, next: -1}
	}
	return c
}

// acquire returns file fi's descriptor, opening the file if needed, and,
// if direct, an O_DIRECT descriptor of it (or -1 when the file system has
// none; f.dioAlign < 0 means "not probed yet" and is settled here). With
// o.create a missing file is created (Open only); created reports that.
// Every successful acquire must be paired with release(fi).
func (c *fdCache) acquire(fi int, direct bool, o openOpts) (fd, dfd int, created bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return -1, -1, false, ErrClosed
	}
	e := &c.entries[fi]
	f := &c.lay.files[fi]
	if e.fd < 0 {
		c.makeRoom(1)
		e.fd, created, _, err = openFileAt(c.rootfd, f.comps, f.path, o)
		if errors.Is(err, ErrNoDescriptors) && c.shrink() {
			e.fd, created, _, err = openFileAt(c.rootfd, f.comps, f.path, o)
		}
		if err != nil {
			e.fd = -1
			return -1, -1, false, err
		}
		c.open++
		c.opens++
	}
	if e.idle {
		c.unlink(fi)
	}
	e.refs++
	if direct && e.dfd < 0 && f.dioAlign != 0 {
		c.makeRoom(1)
		var a int64
		e.dfd, a = directio.Open(e.fd)
		if f.dioAlign < 0 {
			f.dioAlign = a
		}
		if e.dfd >= 0 {
			c.open++
		}
	}
	c.peak = max(c.peak, c.open)
	return e.fd, e.dfd, created, nil
}

// release ends a use begun by acquire.
func (c *fdCache) release(fi int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := &c.entries[fi]
	e.refs--
	if e.refs > 0 || e.fd < 0 {
		return
	}
	if c.closed {
		c.closeEntry(fi)
		return
	}
	// Push at the head: the tail is the least recently used.
	e.idle, e.prev, e.next = true, -1, c.head
	if c.head >= 0 {
		c.entries[c.head].prev = fi
	}
	c.head = fi
	if c.tail < 0 {
		c.tail = fi
	}
	c.makeRoom(0)
}

// drop closes file fi if nobody uses it (a file that needs no descriptor
// after Open: an empty file).
func (c *fdCache) drop(fi int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := &c.entries[fi]; e.idle {
		c.unlink(fi)
		c.closeEntry(fi)
	}
}

// makeRoom closes idle files, least recently used first, until need more
// descriptors fit the budget.
func (c *fdCache) makeRoom(need int) {
	for c.open+need > c.budget && c.tail >= 0 {
		fi := c.tail
		c.unlink(fi)
		c.closeEntry(fi)
	}
}

// shrink closes every idle file after the kernel refused an open for lack
// of descriptors and lowers the budget to what stays open. It reports
// whether anything was closed (a retry can then succeed).
func (c *fdCache) shrink() bool {
	closed := c.tail >= 0
	for c.tail >= 0 {
		fi := c.tail
		c.unlink(fi)
		c.closeEntry(fi)
	}
	c.budget = max(c.open, 1)
	return closed
}

func (c *fdCache) unlink(fi int) {
	e := &c.entries[fi]
	if e.prev >= 0 {
		c.entries[e.prev].next = e.next
	} else {
		c.head = e.next
	}
	if e.next >= 0 {
		c.entries[e.next].prev = e.prev
	} else {
		c.tail = e.prev
	}
	e.prev, e.next, e.idle = -1, -1, false
}

func (c *fdCache) closeEntry(fi int) {
	e := &c.entries[fi]
	if e.dfd >= 0 {
		unix.Close(e.dfd)
		e.dfd = -1
		c.open--
	}
	if e.fd >= 0 {
		unix.Close(e.fd)
		e.fd = -1
		c.open--
	}
}

// stat returns file fi's stamp: from its descriptor when open, else by
// path beneath the root without following a final symlink.
func (c *fdCache) stat(fi int) (stamp, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return stamp{}, ErrClosed
	}
	if e := &c.entries[fi]; e.fd >= 0 {
		return fstamp(e.fd)
	}
	var st unix.Stat_t
	f := &c.lay.files[fi]
	if err := unix.Fstatat(c.rootfd, f.rel, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return stamp{}, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return stamp{}, fmt.Errorf("%w: %s is not a regular file", ErrUnsafePath, f.path)
	}
	return stamp{size: st.Size, mtime: st.Mtim.Nano()}, nil
}

// peek returns file fi's descriptors without acquiring them (tests).
func (c *fdCache) peek(fi int) (fd, dfd int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[fi].fd, c.entries[fi].dfd
}

// stats returns the number of opens and the peak of open descriptors.
func (c *fdCache) stats() (opens int64, peak int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opens, c.peak
}

// closeAll closes every file; files still in use are closed on release.
// Later acquires fail with ErrClosed.
func (c *fdCache) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for fi := range c.entries {
		if c.entries[fi].idle {
			c.unlink(fi)
		}
		if c.entries[fi].refs == 0 {
			c.closeEntry(fi)
		}
	}
}
