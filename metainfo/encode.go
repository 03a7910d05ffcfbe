package metainfo

import (
	"crypto/sha1"
	"fmt"
	"io"
	"strconv"
)

// Canonical bencode encoding (sorted keys, shortest integers) of the values
// this package produces. Decoding goes through the strict scanner and
// bencode-go; encoding is small enough to do by hand, which keeps the output
// byte-for-byte predictable.

func appendStr(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}

func appendInt(b []byte, n int64) []byte {
	b = append(b, 'i')
	b = strconv.AppendInt(b, n, 10)
	return append(b, 'e')
}

func appendStrList(b []byte, l []string) []byte {
	b = append(b, 'l')
	for _, s := range l {
		b = appendStr(b, s)
	}
	return append(b, 'e')
}

// Encode returns the canonical bencoding of the info dictionary. Its
// SHA-1 is the info-hash only for torrents that were canonically encoded in
// the first place; use Torrent.InfoBytes for the real one.
func (i *Info) Encode() []byte {
	b := []byte{'d'}
	if i.MultiFile {
		b = appendStr(b, "files")
		b = append(b, 'l')
		for _, f := range i.Files {
			b = append(b, 'd')
			if f.Attr != "" {
				b = appendStr(b, "attr")
				b = appendStr(b, f.Attr)
			}
			b = appendStr(b, "length")
			b = appendInt(b, f.Length)
			b = appendStr(b, "path")
			b = appendStrList(b, f.Path)
			if f.SymlinkPath != nil {
				b = appendStr(b, "symlink path")
				b = appendStrList(b, f.SymlinkPath)
			}
			b = append(b, 'e')
		}
		b = append(b, 'e')
	} else {
		b = appendStr(b, "length")
		b = appendInt(b, i.Length)
	}
	b = appendStr(b, "name")
	b = appendStr(b, i.Name)
	b = appendStr(b, "piece length")
	b = appendInt(b, i.PieceLength)
	b = appendStr(b, "pieces")
	b = appendStr(b, string(i.Pieces))
	if i.Private {
		b = appendStr(b, "private")
		b = appendInt(b, 1)
	}
	return append(b, 'e')
}

// Encode returns the bencoded .torrent file. The info dictionary is written
// as InfoBytes, verbatim, so the info-hash is preserved.
func (t *Torrent) Encode() []byte {
	b := []byte{'d'}
	if t.Announce != "" {
		b = appendStr(b, "announce")
		b = appendStr(b, t.Announce)
	}
	if len(t.AnnounceList) > 0 {
		b = appendStr(b, "announce-list")
		b = append(b, 'l')
		for _, tier := range t.AnnounceList {
			b = appendStrList(b, tier)
		}
		b = append(b, 'e')
	}
	if t.Comment != "" {
		b = appendStr(b, "comment")
		b = appendStr(b, t.Comment)
	}
	if t.CreatedBy != "" {
		b = appendStr(b, "created by")
		b = appendStr(b, t.CreatedBy)
	}
	if !t.CreationDate.IsZero() {
		b = appendStr(b, "creation date")
		b = appendInt(b, t.CreationDate.Unix())
	}
	b = appendStr(b, "info")
	b = append(b, t.InfoBytes...)
	return append(b, 'e')
}

// Build creates a .torrent file. files lists the content in order (Offset
// is ignored); a single File with an empty Path makes a single-file torrent
// called name. data supplies the concatenated content of all files (at
// least the sum of their lengths; nothing beyond is read). trackers become
// "announce" (the first URL) and "announce-list" (all tiers). The result is
// parsed back before it is returned, so it is always a valid torrent.
func Build(name string, files []File, pieceLength int64, trackers [][]string, data io.Reader) ([]byte, error) {
	if len(files) == 0 {
		return nil, invalidf("build: no files")
	}
	if pieceLength < MinPieceLength || pieceLength > MaxPieceLength {
		return nil, invalidf("build: piece length %d outside [%d, %d]", pieceLength, MinPieceLength, MaxPieceLength)
	}
	info := &Info{Name: name, PieceLength: pieceLength}
	if len(files) == 1 && len(files[0].Path) == 0 {
		info.Files = []File{{Path: []string{name}, Length: files[0].Length}}
		info.Length = files[0].Length
	} else {
		info.MultiFile = true
		for _, f := range files {
			if len(f.Path) == 0 {
				return nil, invalidf("build: a file in a multi-file torrent has no path")
			}
			if f.Length < 0 {
				return nil, invalidf("build: negative file length %d", f.Length)
			}
			info.Files = append(info.Files, File{Path: f.Path, Length: f.Length, Offset: info.Length, Attr: f.Attr, SymlinkPath: f.SymlinkPath})
			info.Length += f.Length
		}
	}
	if info.Length <= 0 {
		return nil, invalidf("build: total length is %d", info.Length)
	}
	buf := make([]byte, pieceLength)
	for off := int64(0); off < info.Length; off += pieceLength {
		n := min(pieceLength, info.Length-off)
		if _, err := io.ReadFull(data, buf[:n]); err != nil {
			return nil, fmt.Errorf("metainfo: build: reading data at offset %d: %w", off, err)
		}
		h := sha1.Sum(buf[:n])
		info.Pieces = append(info.Pieces, h[:]...)
	}
	t := &Torrent{Info: info, InfoBytes: info.Encode(), CreatedBy: "flotilla"}
	for _, tier := range trackers {
		if len(tier) == 0 {
			continue
		}
		if t.Announce == "" {
			t.Announce = tier[0]
		}
		t.AnnounceList = append(t.AnnounceList, tier)
	}
	out := t.Encode()
	if _, err := Parse(out); err != nil {
		return nil, fmt.Errorf("metainfo: build: %w", err)
	}
	return out, nil
}
