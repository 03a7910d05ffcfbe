package piecestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"flotilla/metainfo"
)

// ErrNoSpace is matched by a *SpaceError: the output directory's file
// system has less free space than the torrent still needs.
var ErrNoSpace = errors.New("piecestore: not enough free space")

// SpaceError reports that the torrent needs more space than is free where
// it is stored. Open refuses with it before creating anything when
// Config.Preallocate is set; with sparse files it only logs a warning.
type SpaceError struct {
	Dir  string // the output directory
	Need int64  // bytes still to be allocated (the torrent's stored files minus what they already hold)
	Free int64  // bytes available to the process there
}

func (e *SpaceError) Error() string {
	return fmt.Sprintf("piecestore: %s: the torrent needs %s more and only %s is free there (free some space or choose another output directory, then run again)",
		e.Dir, FormatBytes(e.Need), FormatBytes(e.Free))
}

// Is matches ErrNoSpace.
func (e *SpaceError) Is(target error) bool { return target == ErrNoSpace }

// CheckSpace compares the space the torrent's files still need beneath dir
// (their lengths minus the blocks already allocated to files of the same
// path; padding is not stored) with the free space of dir's file system
// (or of its nearest existing parent). It returns a *SpaceError when there
// is not enough, nil when there is or when the figures are unavailable.
func CheckSpace(dir string, info *metainfo.Info) error {
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil
	}
	var need int64
	for i, f := range info.Files {
		if f.Length == 0 || f.IsPad() || f.IsSymlink() {
			continue
		}
		var have int64
		if fi, err := os.Lstat(filepath.Join(root, info.FilePath(i))); err == nil && fi.Mode().IsRegular() {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				have = min(st.Blocks*512, f.Length)
			}
		}
		need += f.Length - have
	}
	d := root
	for {
		var fs syscall.Statfs_t
		err := syscall.Statfs(d, &fs)
		if err == nil {
			free := int64(fs.Bavail) * fs.Bsize
			if need > free {
				return &SpaceError{Dir: root, Need: need, Free: free}
			}
			return nil
		}
		if !errors.Is(err, syscall.ENOENT) || d == filepath.Dir(d) {
			return nil
		}
		d = filepath.Dir(d)
	}
}

// FormatBytes writes n in binary units with one decimal ("76.0 GiB").
func FormatBytes(n int64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, u := float64(n)/1024, 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	return fmt.Sprintf("%.1f %ciB", v, units[u])
}
