package delegate

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// A node's data directory.
//
// It holds one job-<infohash>-<job>.part per running job, and the
// kept-<infohash>.part/.bits pairs of lost sessions (kept.go). A Server
// locks it (flock on the directory) for its lifetime, so that at start it
// can remove what an earlier run killed without cleaning up left behind:
// job files (no job outlives its process), temporary files, and halves of
// kept pairs. Complete kept pairs stay: the next job of their torrent
// adopts them.
//
// A full disk fails the job that hit it with ErrNodeDiskFull (its lease
// returns to the coordinator at once), and a job is rejected while the
// directory has no room for one of its pieces.

// isDiskFull reports whether err is ENOSPC or EDQUOT.
func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// diskFull wraps a write error caused by a full disk under dir; other
// errors are returned as they are.
func diskFull(err error, dir string) error {
	if err == nil || !isDiskFull(err) {
		return err
	}
	return fmt.Errorf("%w: %w (free space in %s on this node; its pieces go back to the coordinator, "+
		"and the node takes work again once there is room)", ErrNodeDiskFull, err, dir)
}

// checkRoom refuses a job when dir has less free space than one of its
// pieces (need bytes). If the free space cannot be read, the writes will
// tell.
func checkRoom(dir string, need int64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return nil
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if free >= need {
		return nil
	}
	return fmt.Errorf("%w: %s free in %s, and a piece of this torrent needs %s "+
		"(free space on this node; it takes work again once there is room)", ErrNodeDiskFull, sizeStr(free), dir, sizeStr(need))
}

func sizeStr(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// openDataDir creates dir, locks it for this server and removes the
// orphans of an earlier run (sweepOrphans). The returned file holds the
// lock until it is closed.
func openDataDir(dir string, log *slog.Logger) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("delegate: data dir: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("delegate: data dir: %w", err)
	}
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		d.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s (give each node its own --data directory)", ErrDataDirInUse, dir)
		}
		return nil, fmt.Errorf("delegate: lock data dir %s: %w", dir, err)
	}
	sweepOrphans(dir, log)
	return d, nil
}

// orphan is a file sweepOrphans removes.
type orphan struct {
	name   string
	why    string
	size   int64 // apparent size
	onDisk int64 // allocated bytes (job files are sparse)
}

// findOrphans lists the files in dir that no running job or kept list
// claims: at a node's start that is every job file and temporary file,
// a kept .part without its .bits, and a .bits without its .part or that
// is not a kept list. Files whose names we do not write are left alone.
func findOrphans(dir string) ([]orphan, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, e := range ents {
		if e.Type().IsRegular() {
			names[e.Name()] = true
		}
	}
	var out []orphan
	add := func(name, why string) {
		o := orphan{name: name, why: why}
		if fi, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			o.size = fi.Size()
			o.onDisk = o.size
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				o.onDisk = st.Blocks * 512
			}
		}
		out = append(out, o)
	}
	for _, e := range ents {
		name := e.Name()
		if !names[name] {
			continue
		}
		switch {
		case strings.HasPrefix(name, "job-") && strings.HasSuffix(name, ".part"):
			add(name, "job file of an earlier run")
		case (strings.HasPrefix(name, "job-") || strings.HasPrefix(name, "kept-")) && strings.HasSuffix(name, ".tmp"):
			add(name, "temporary file")
		case strings.HasPrefix(name, "kept-") && strings.HasSuffix(name, ".part"):
			if !names[strings.TrimSuffix(name, ".part")+".bits"] {
				add(name, "kept pieces without their list")
			}
		case strings.HasPrefix(name, "kept-") && strings.HasSuffix(name, ".bits"):
			base := strings.TrimSuffix(name, ".bits")
			if !names[base+".part"] {
				add(name, "kept list without its pieces")
			} else if !keptListFor(filepath.Join(dir, name), strings.TrimPrefix(base, "kept-")) {
				add(name, "not a kept list for its torrent")
				add(base+".part", "kept pieces with a damaged list")
			}
		}
	}
	return out, nil
}

// keptListFor reports whether the .bits file at path starts as a kept
// list for the info-hash ihHex (its name).
func keptListFor(path, ihHex string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, len(keptMagic)+20)
	if _, err := io.ReadFull(f, b); err != nil {
		return false
	}
	return string(b[:len(keptMagic)]) == keptMagic && fmt.Sprintf("%x", b[len(keptMagic):]) == ihHex
}

// sweepOrphans removes findOrphans' files and logs each and the total.
func sweepOrphans(dir string, log *slog.Logger) {
	orphans, err := findOrphans(dir)
	if err != nil {
		log.Warn("cannot look for files left by an earlier run", "dir", dir, "err", err)
		return
	}
	var n int
	var freed int64
	for _, o := range orphans {
		if err := os.Remove(filepath.Join(dir, o.name)); err != nil {
			log.Warn("cannot remove a file left by an earlier run", "file", o.name, "err", err)
			continue
		}
		n++
		freed += o.onDisk
		log.Info("removed a file left by an earlier run", "file", o.name, "why", o.why, "size", o.size, "on_disk", o.onDisk)
	}
	if n > 0 {
		log.Info("removed files left by an earlier run (killed before it cleaned up)", "dir", dir, "files", n,
			"bytes", freed, "freed", sizeStr(freed))
	}
}
