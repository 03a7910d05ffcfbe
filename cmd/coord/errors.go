package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"flotilla/cluster"
	"flotilla/internal/clusteropt"
	"flotilla/metainfo"
	"flotilla/piecestore"
)

// Every error a user can get from coord is one line that starts with the
// command ("coord download: ") and ends with what to do about it. failf
// and failErr print such lines; advice chooses the closing sentence for an
// error from its kind (errors.Is), never from its text.

// failf prints "coord CMD: WHAT; TODO" to w and returns exit status 1.
func failf(w io.Writer, cmd, todo, format string, a ...any) int {
	fmt.Fprintln(w, message(cmd, fmt.Sprintf(format, a...), todo))
	return 1
}

// failErr prints err as failf does, prefixed with context (if any) and
// followed by what advice says to do about it. It returns 1.
func failErr(w io.Writer, cmd, context string, err error) int {
	what := err.Error()
	if context != "" {
		what = context + ": " + what
	}
	fmt.Fprintln(w, message(cmd, what, advice(err)))
	return 1
}

// message joins what happened and what to do into one line.
func message(cmd, what, todo string) string {
	if todo == "" {
		return "coord " + cmd + ": " + what
	}
	return "coord " + cmd + ": " + what + "; " + todo
}

// advice is the closing sentence for an error from coord's own layers: what
// the user can do about it. It is empty for errors whose text already says
// so (piecestore's file errors name a disk that is full, an I/O error or a
// descriptor limit, and the remedy).
func advice(err error) string {
	var fe *piecestore.FileError
	switch {
	case errors.As(err, &fe) && (errors.Is(err, piecestore.ErrDiskFull) || errors.Is(err, piecestore.ErrIO) ||
		errors.Is(err, piecestore.ErrNoDescriptors)):
		return ""
	case errors.Is(err, piecestore.ErrNoSpace):
		return "" // the error gives the figures and what to do
	case errors.Is(err, piecestore.ErrDiskFull):
		return "free some space (or choose another --out), then run the same command to resume"
	case errors.Is(err, piecestore.ErrNoDescriptors):
		return "raise the open-file limit (ulimit -n) or close other programs, then run the same command again"
	case errors.Is(err, piecestore.ErrInUse):
		return "another coord is using this directory for the same torrent: stop it first, or choose another --out"
	case errors.Is(err, piecestore.ErrUnsafeLink):
		return "do not use this torrent, or ask its publisher for one whose links stay inside it"
	case errors.Is(err, piecestore.ErrUnsafePath):
		return "coord does not write through symlinks or over other kinds of file: move it out of the way, or choose another directory"
	case errors.Is(err, piecestore.ErrInvalidInfo):
		return "the torrent's files cannot be laid out on disk; ask its publisher for a corrected torrent"
	case errors.Is(err, cluster.ErrNoKey):
		return "" // the error says how to make one
	case errors.Is(err, cluster.ErrBadKey):
		return "make a new key with `coord keygen > cluster.key` and give it to every member"
	case errors.Is(err, clusteropt.ErrAddr):
		return "see the command's --help for the cluster flags"
	case errors.Is(err, fs.ErrPermission):
		return "check the permissions, or choose another path"
	case errors.Is(err, fs.ErrNotExist):
		return "check the path"
	}
	return "run the same command again once the cause is fixed (verified pieces are kept)"
}

// loadTorrent reads a .torrent file for a command. On failure it prints
// what went wrong and what to do, and returns nil.
func loadTorrent(w io.Writer, cmd, path string) *metainfo.Torrent {
	t, err := metainfo.Load(path)
	if err == nil {
		for _, warn := range t.Warnings {
			fmt.Fprintf(w, "coord %s: warning: %s: %v (other clients accept this too)\n", cmd, path, warn)
		}
		return t
	}
	switch {
	case metainfo.IsMagnet(path) || errors.Is(err, metainfo.ErrMagnetNotSupported):
		failf(w, cmd, "give the path of the .torrent file (coord download fetches it from a magnet link and saves it beside the data)",
			"coord %s takes a .torrent file, not a magnet link", cmd)
	case errors.Is(err, metainfo.ErrV2Only):
		failf(w, cmd, "use a v1 or hybrid torrent of the same data",
			"%s is a v2-only (BEP 52) torrent, which is not supported yet", path)
	case errors.Is(err, fs.ErrNotExist):
		failf(w, cmd, "check the path of the .torrent file", "cannot read %s: no such file", path)
	case errors.Is(err, fs.ErrPermission):
		failf(w, cmd, "check the file's permissions", "cannot read %s: permission denied", path)
	case errors.Is(err, metainfo.ErrInvalid), errors.Is(err, metainfo.ErrMalformed):
		failf(w, cmd, "check that it is a complete .torrent file (a download of it may have been cut short)",
			"%s is not a valid torrent (%s)", path, strings.TrimPrefix(strings.TrimPrefix(err.Error(), path+": "), "metainfo: "))
	default:
		failf(w, cmd, "check the path of the .torrent file", "cannot read %s: %v", path, err)
	}
	return nil
}
