package metainfo

import (
	"path/filepath"
	"sort"
)

// NumPieces returns the number of pieces.
func (i *Info) NumPieces() int { return len(i.Pieces) / 20 }

// PieceOffset returns the offset of piece p's first byte in the torrent's
// concatenated data.
func (i *Info) PieceOffset(p int) int64 { return int64(p) * i.PieceLength }

// PieceLen returns the length of piece p; the last piece may be short. It
// returns 0 for a piece index out of range.
func (i *Info) PieceLen(p int) int64 {
	n := i.NumPieces()
	if p < 0 || p >= n {
		return 0
	}
	if p == n-1 {
		return i.Length - i.PieceOffset(p)
	}
	return i.PieceLength
}

// PieceHash returns the SHA-1 hash of piece p (zero for an index out of
// range).
func (i *Info) PieceHash(p int) (h [20]byte) {
	if p < 0 || p >= i.NumPieces() {
		return h
	}
	copy(h[:], i.Pieces[p*20:])
	return h
}

// FileRange is a contiguous part of one file.
type FileRange struct {
	File   int   // index into Info.Files
	Offset int64 // offset within that file
	Length int64
}

// FileRanges returns the file ranges piece p covers, in order. Zero-length
// files never appear. It returns nil for a piece index out of range.
func (i *Info) FileRanges(p int) []FileRange {
	return i.AppendFileRanges(nil, p)
}

// AppendFileRanges is FileRanges appending to dst, for callers that reuse a
// buffer on the hot path. The first file is found by binary search.
func (i *Info) AppendFileRanges(dst []FileRange, p int) []FileRange {
	n := i.PieceLen(p)
	if n == 0 {
		return dst
	}
	start := i.PieceOffset(p)
	end := start + n
	f := sort.Search(len(i.Files), func(k int) bool {
		return i.Files[k].Offset+i.Files[k].Length > start
	})
	for ; f < len(i.Files) && i.Files[f].Offset < end; f++ {
		file := &i.Files[f]
		if file.Length == 0 {
			continue
		}
		lo := max(start, file.Offset)
		hi := min(end, file.Offset+file.Length)
		dst = append(dst, FileRange{File: f, Offset: lo - file.Offset, Length: hi - lo})
	}
	return dst
}

// FilePath returns file f's OS path relative to the output directory: the
// name for a single-file torrent, Name/components... for a multi-file one.
// It returns "" for an index out of range.
func (i *Info) FilePath(f int) string {
	if f < 0 || f >= len(i.Files) {
		return ""
	}
	if !i.MultiFile {
		return i.Name
	}
	parts := make([]string, 0, len(i.Files[f].Path)+1)
	parts = append(parts, i.Name)
	parts = append(parts, i.Files[f].Path...)
	return filepath.Join(parts...)
}
