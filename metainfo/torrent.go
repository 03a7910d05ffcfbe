package metainfo

import (
	"bytes"
	"crypto/sha1"
	"fmt"
	"io"
	"os"
	"time"

	bencode "github.com/jackpal/bencode-go"
)

// MaxTorrentSize is the largest .torrent file Load accepts.
const MaxTorrentSize = 64 << 20

// Torrent is a parsed .torrent file.
type Torrent struct {
	Info         *Info
	InfoBytes    []byte     // exact bytes of the info dict as in the file
	InfoHash     [20]byte   // SHA-1 of InfoBytes
	Announce     string     // "announce", may be empty (trackerless)
	AnnounceList [][]string // BEP 12 tiers as in the file; nil if absent or empty
	CreationDate time.Time  // zero if absent
	Comment      string
	CreatedBy    string
}

// Parse parses and validates a .torrent file.
func Parse(data []byte) (*Torrent, error) {
	sp, found, err := scanDocument(data, "info")
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, invalidf("torrent: missing \"info\"")
	}
	if data[sp.start] != 'd' {
		return nil, invalidf("torrent: \"info\" is not a dictionary")
	}
	v, err := bencode.Decode(bytes.NewReader(data))
	if err != nil { // cannot happen after a successful scan; keep it safe
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	d, ok := v.(map[string]any)
	if !ok {
		return nil, invalidf("torrent is not a dictionary")
	}
	infoD, ok := d["info"].(map[string]any)
	if !ok {
		return nil, invalidf("torrent: \"info\" is not a dictionary")
	}
	info, err := infoFromDict(infoD)
	if err != nil {
		return nil, err
	}
	t := &Torrent{Info: info}
	t.InfoBytes = append([]byte(nil), data[sp.start:sp.end]...)
	t.InfoHash = sha1.Sum(t.InfoBytes)

	const ctx = "torrent"
	if t.Announce, _, err = getString(d, "announce", ctx, false); err != nil {
		return nil, err
	}
	if al, ok := d["announce-list"]; ok {
		tiers, ok := al.([]any)
		if !ok {
			return nil, invalidf("torrent: \"announce-list\" is %s, want list", typeName(al))
		}
		for i, tier := range tiers {
			urls, err := getStringList(tier, fmt.Sprintf("torrent: announce-list[%d]", i))
			if err != nil {
				return nil, err
			}
			t.AnnounceList = append(t.AnnounceList, urls)
		}
	}
	if t.Comment, _, err = getString(d, "comment", ctx, false); err != nil {
		return nil, err
	}
	if t.CreatedBy, _, err = getString(d, "created by", ctx, false); err != nil {
		return nil, err
	}
	if cd, ok, err := getInt(d, "creation date", ctx, false); err != nil {
		return nil, err
	} else if ok {
		t.CreationDate = time.Unix(cd, 0).UTC()
	}
	return t, nil
}

// Load reads and parses a .torrent file.
func Load(path string) (*Torrent, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("metainfo: load: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxTorrentSize+1))
	if err != nil {
		return nil, fmt.Errorf("metainfo: load %s: %w", path, err)
	}
	if len(data) > MaxTorrentSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrInvalid, path, MaxTorrentSize)
	}
	t, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Tiers returns the tracker tiers to use: the announce-list if it has any
// non-empty URL, otherwise [[announce]] (nil if there is no tracker at all).
// Empty URLs and URLs seen in an earlier position are dropped, and so are
// tiers left empty. The result is a fresh copy the caller may shuffle.
func (t *Torrent) Tiers() [][]string {
	seen := make(map[string]bool)
	var out [][]string
	for _, tier := range t.AnnounceList {
		var nt []string
		for _, u := range tier {
			if u == "" || seen[u] {
				continue
			}
			seen[u] = true
			nt = append(nt, u)
		}
		if len(nt) > 0 {
			out = append(out, nt)
		}
	}
	if len(out) == 0 && t.Announce != "" {
		out = [][]string{{t.Announce}}
	}
	return out
}
