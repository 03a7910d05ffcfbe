package piecestore

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"flotilla/metainfo"
)

// recordDirName is the directory beneath Dir that holds completion records.
const recordDirName = ".flotilla"

// fileEntry is one file of the torrent as the store sees it.
type fileEntry struct {
	rel    string   // Info.FilePath(f), relative to Dir
	path   string   // Dir joined with rel, for messages
	comps  []string // rel split into components
	offset int64    // first byte in the torrent's data
	length int64
	pad    bool // BEP 47 padding file: not stored, reads as zeros
	// link is the target written into a BEP 47 symlink entry (relative to
	// the link's directory, staying inside Dir), "" for other files.
	link string
	// dioAlign is the alignment O_DIRECT writes to the file need (offset,
	// length and buffer address), a power of two; 0 when the file is
	// written through the page cache only, -1 until probed (DirectIO).
	// The descriptors live in the store's fdCache.
	dioAlign int64
}

// stored reports whether the file's bytes live on disk.
func (f *fileEntry) stored() bool { return f.length > 0 && !f.pad }

// layout maps the torrent's byte space (pieces) onto its files. It is
// immutable after Open apart from the descriptors, which are set once.
type layout struct {
	pieceLen  int64
	total     int64
	numPieces int
	hashes    []byte
	files     []fileEntry
	nonEmpty  []int // indices of files with length > 0, in offset order
}

// newLayout validates info's geometry and every file path against dir.
func newLayout(dir string, info *metainfo.Info) (*layout, error) {
	if info.PieceLength <= 0 {
		return nil, fmt.Errorf("%w: piece length %d", ErrInvalidInfo, info.PieceLength)
	}
	if len(info.Pieces)%20 != 0 {
		return nil, fmt.Errorf("%w: pieces field of %d bytes", ErrInvalidInfo, len(info.Pieces))
	}
	if len(info.Files) == 0 {
		return nil, fmt.Errorf("%w: no files", ErrInvalidInfo)
	}
	n := len(info.Pieces) / 20
	if info.Length < 0 || int64(n) != (info.Length+info.PieceLength-1)/info.PieceLength {
		return nil, fmt.Errorf("%w: %d pieces of %d bytes for %d bytes", ErrInvalidInfo, n, info.PieceLength, info.Length)
	}
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("piecestore: output dir %s: %w", dir, err)
	}
	l := &layout{pieceLen: info.PieceLength, total: info.Length, numPieces: n, hashes: info.Pieces}
	l.files = make([]fileEntry, len(info.Files))
	seen := make(map[string]int, len(info.Files))
	var off int64
	for i, mf := range info.Files {
		if mf.Length < 0 || mf.Offset != off {
			return nil, fmt.Errorf("%w: file %d at offset %d (want %d), length %d", ErrInvalidInfo, i, mf.Offset, off, mf.Length)
		}
		for _, c := range append([]string{info.Name}, mf.Path...) {
			if !validComponent(c) {
				return nil, fmt.Errorf("%w: file %d: path component %q", ErrUnsafePath, i, c)
			}
		}
		rel := info.FilePath(i)
		comps, err := safeComponents(root, rel)
		if err != nil {
			return nil, err
		}
		fe := fileEntry{rel: rel, path: filepath.Join(root, rel), comps: comps, offset: off, length: mf.Length, pad: mf.IsPad()}
		if mf.IsSymlink() {
			if fe.link, err = linkTarget(root, info, i, fe.path); err != nil {
				return nil, err
			}
		}
		if !fe.pad {
			if j, dup := seen[rel]; dup {
				return nil, fmt.Errorf("%w: files %d and %d share the path %q", ErrUnsafePath, j, i, rel)
			}
			seen[rel] = i
		}
		l.files[i] = fe
		if mf.Length > 0 {
			l.nonEmpty = append(l.nonEmpty, i)
		}
		off += mf.Length
	}
	if off != info.Length {
		return nil, fmt.Errorf("%w: files add up to %d bytes, info says %d", ErrInvalidInfo, off, info.Length)
	}
	return l, nil
}

// linkTarget returns the text of file i's symlink: its BEP 47 target
// (relative to the torrent's root directory) made relative to the link's
// own directory. A link with data, or whose target leaves root or points
// into the store's own directory, is refused.
func linkTarget(root string, info *metainfo.Info, i int, linkPath string) (string, error) {
	mf := info.Files[i]
	if mf.Length != 0 {
		return "", fmt.Errorf("%w: %s is a symlink with %d bytes of data", ErrInvalidInfo, linkPath, mf.Length)
	}
	base := root
	if info.MultiFile {
		base = filepath.Join(root, info.Name)
	}
	target := filepath.Join(append([]string{base}, mf.SymlinkPath...)...)
	inside := strings.HasPrefix(target, root+string(filepath.Separator)) && target != linkPath
	if rest, ok := strings.CutPrefix(target, filepath.Join(root, recordDirName)); ok && (rest == "" || rest[0] == filepath.Separator) {
		inside = false
	}
	if !inside {
		return "", fmt.Errorf("%w: %s would point to %q, outside %s; refusing to create it (the torrent cannot be stored safely)",
			ErrUnsafeLink, linkPath, strings.Join(mf.SymlinkPath, "/"), root)
	}
	rel, err := filepath.Rel(filepath.Dir(linkPath), target)
	if err != nil {
		return "", fmt.Errorf("%w: symlink %s: %v", ErrUnsafePath, linkPath, err)
	}
	return rel, nil
}

// validComponent reports whether c can be one path component.
func validComponent(c string) bool {
	return c != "" && c != "." && c != ".." && !strings.ContainsAny(c, "/\\\x00")
}

// safeComponents checks rel lexically (defence in depth: metainfo already
// validated the components) and returns its components.
func safeComponents(root, rel string) ([]string, error) {
	if rel == "" || filepath.IsAbs(rel) || filepath.Clean(rel) != rel {
		return nil, fmt.Errorf("%w: %q", ErrUnsafePath, rel)
	}
	comps := strings.Split(rel, string(filepath.Separator))
	for _, c := range comps {
		if c == "" || c == "." || c == ".." || strings.IndexByte(c, 0) >= 0 {
			return nil, fmt.Errorf("%w: %q", ErrUnsafePath, rel)
		}
	}
	if comps[0] == recordDirName {
		return nil, fmt.Errorf("%w: %q collides with the store's %s directory", ErrUnsafePath, rel, recordDirName)
	}
	joined := filepath.Join(root, rel)
	if !strings.HasPrefix(joined, root+string(filepath.Separator)) && root != string(filepath.Separator) {
		return nil, fmt.Errorf("%w: %q leaves %s", ErrUnsafePath, rel, root)
	}
	return comps, nil
}

func (l *layout) pieceOffset(p int) int64 { return int64(p) * l.pieceLen }

// pieceSize returns the length of piece p (the last may be short), 0 if out
// of range.
func (l *layout) pieceSize(p int) int64 {
	if p < 0 || p >= l.numPieces {
		return 0
	}
	if p == l.numPieces-1 {
		return l.total - l.pieceOffset(p)
	}
	return l.pieceLen
}

func (l *layout) pieceHash(p int) []byte { return l.hashes[p*20 : p*20+20] }

// spans calls fn for every part of the torrent range [off, off+n) that lies
// in a non-empty file, in order: fi is the file index, fileOff the offset in
// that file, pos the offset relative to off, and length the part's size.
func (l *layout) spans(off, n int64, fn func(fi int, fileOff, pos, length int64) error) error {
	end := off + n
	k := sort.Search(len(l.nonEmpty), func(k int) bool {
		f := &l.files[l.nonEmpty[k]]
		return f.offset+f.length > off
	})
	for ; k < len(l.nonEmpty); k++ {
		fi := l.nonEmpty[k]
		f := &l.files[fi]
		if f.offset >= end {
			break
		}
		lo, hi := max(off, f.offset), min(end, f.offset+f.length)
		if err := fn(fi, lo-f.offset, lo-off, hi-lo); err != nil {
			return err
		}
	}
	return nil
}

// appendPieceFiles appends the indices of stored files that piece p touches.
func (l *layout) appendPieceFiles(dst []int, p int) []int {
	_ = l.spans(l.pieceOffset(p), l.pieceSize(p), func(fi int, _, _, _ int64) error {
		if l.files[fi].stored() {
			dst = append(dst, fi)
		}
		return nil
	})
	return dst
}
