package lab

import (
	"os"
	"syscall"
)

// allocatedBytes is the disk space allocated to a file (st_blocks*512).
func allocatedBytes(fi os.FileInfo) (int64, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Blocks * 512, true
}
