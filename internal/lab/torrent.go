package lab

import (
	"context"
	"crypto/sha1"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"flotilla/metainfo"
)

// Torrent is a .torrent file made for a payload.
type Torrent struct {
	Path        string   // the .torrent file
	Name        string   // info name
	InfoHash    [20]byte // SHA-1 of the bencoded info dictionary
	PieceLength int64
	Tiers       [][]string // announce tiers
}

// MakeTorrent writes a .torrent for the payload at out with metainfo.Build
// (piece length a power of two >= 16 KiB; tiers become announce and
// announce-list). The info-hash is also computed apart from metainfo, from
// the span of "info" the lab finds itself, and a disagreement is an error.
func MakeTorrent(ctx context.Context, p *Payload, pieceLength int64, tiers [][]string, out string) (*Torrent, error) {
	if pieceLength < 16<<10 || pieceLength&(pieceLength-1) != 0 {
		return nil, fmt.Errorf("lab: piece length %d is not a power of two >= 16 KiB", pieceLength)
	}
	if len(tiers) == 0 {
		return nil, fmt.Errorf("lab: torrent needs at least one tracker tier")
	}
	var files []metainfo.File
	var readers []io.Reader
	for _, f := range p.Files {
		fh, err := os.Open(filepath.Join(filepath.Dir(p.Path), f.Rel))
		if err != nil {
			return nil, fmt.Errorf("lab: torrent: %w", err)
		}
		defer fh.Close()
		readers = append(readers, fh)
		mf := metainfo.File{Length: f.Size}
		if p.MultiFile {
			rel := filepath.ToSlash(f.Rel)
			mf.Path = strings.Split(strings.TrimPrefix(rel, p.Name+"/"), "/")
		}
		files = append(files, mf)
	}
	data, err := metainfo.Build(p.Name, files, pieceLength, tiers, &ctxReader{ctx, io.MultiReader(readers...)})
	if err != nil {
		return nil, fmt.Errorf("lab: torrent: %w", err)
	}
	t, err := writeTorrent(out, data)
	if err != nil {
		return nil, err
	}
	return &Torrent{Path: out, Name: p.Name, InfoHash: t.InfoHash, PieceLength: pieceLength, Tiers: tiers}, nil
}

// SetTrackers replaces the announce URLs of the .torrent at path with one
// tier holding announce; the info dictionary, so the info-hash, is kept.
func SetTrackers(path string, tiers [][]string) error {
	t, err := metainfo.Load(path)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	t.Announce, t.AnnounceList = "", nil
	for _, tier := range tiers {
		if len(tier) == 0 {
			continue
		}
		if t.Announce == "" {
			t.Announce = tier[0]
		}
		t.AnnounceList = append(t.AnnounceList, tier)
	}
	_, err = writeTorrent(path, t.Encode())
	return err
}

// writeTorrent checks data (parses, and cross-checks the info-hash with
// the lab's own reader) and writes it atomically to path.
func writeTorrent(path string, data []byte) (*metainfo.Torrent, error) {
	t, err := metainfo.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("lab: built torrent does not parse: %w", err)
	}
	ih, err := InfoHashOf(data)
	if err != nil {
		return nil, fmt.Errorf("lab: built torrent: %w", err)
	}
	if ih != t.InfoHash {
		return nil, fmt.Errorf("lab: metainfo says info-hash %x, the lab's reader %x", t.InfoHash, ih)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("lab: torrent: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return nil, fmt.Errorf("lab: torrent: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("lab: torrent: %w", err)
	}
	return t, nil
}

// ctxReader stops a long read (hashing gigabytes) when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}

// InfoHashOf returns the SHA-1 of the exact bytes of a .torrent's info
// dictionary.
func InfoHashOf(torrent []byte) ([20]byte, error) {
	_, spans, err := bdecodeDict(torrent)
	if err != nil {
		return [20]byte{}, err
	}
	s, ok := spans["info"]
	if !ok || torrent[s[0]] != 'd' {
		return [20]byte{}, fmt.Errorf("%w: no info dictionary", errBencode)
	}
	return sha1.Sum(torrent[s[0]:s[1]]), nil
}
