// Package directio opens O_DIRECT descriptors of files and checks that a
// write can go through one: writes that bypass the page cache cost the
// kernel no copy and no page allocation, so storing a download's pieces
// leaves the CPU to the download (piecestore for the coordinator's output,
// a swarm node's store of the pieces it holds for upload).
package directio

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Open returns a write-only O_DIRECT descriptor of the file open as fd and
// the alignment its writes need (offset, length and memory), or -1 when
// the file system cannot do direct I/O (statx reports no alignment, or the
// open is refused). The file is reopened through /proc/self/fd, so it is
// the same inode fd names: no path is walked again.
func Open(fd int) (int, int64) {
	var st unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &st); err != nil ||
		st.Mask&unix.STATX_DIOALIGN == 0 || st.Dio_mem_align == 0 || st.Dio_offset_align == 0 {
		return -1, 0
	}
	// Page alignment at least: a direct write then never shares a page
	// with buffered writes beside it.
	align := max(int64(st.Dio_mem_align), int64(st.Dio_offset_align), int64(os.Getpagesize()))
	if align&(align-1) != 0 {
		return -1, 0
	}
	dfd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), unix.O_WRONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, 0
	}
	return dfd, align
}

// Aligned reports whether b can be written with O_DIRECT at off under
// align: its address, its length and off are multiples of align.
func Aligned(b []byte, off, align int64) bool {
	return align > 0 && len(b) > 0 && off%align == 0 && int64(len(b))%align == 0 &&
		int64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))%align == 0
}
