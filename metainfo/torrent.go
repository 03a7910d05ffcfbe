package metainfo

import (
	"bytes"
	"crypto/sha1"
	"fmt"
	"io"
	"os"
	"strings"
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
	// Warnings lists what Parse tolerated, as other clients do: each wraps
	// ErrTrailingData, ErrDuplicateKey or ErrBadAnnounceList and says what
	// was ignored. None of them affects the content or the info-hash.
	Warnings []error
}

// topKeys are the top-level keys Parse reads; others are validated but not
// decoded.
var topKeys = []string{"info", "announce", "announce-list", "comment", "created by", "creation date"}

// Parse parses and validates a .torrent file. It tolerates, with a warning
// in Torrent.Warnings, data after the top-level dictionary, duplicate keys
// outside the info dictionary and a malformed announce-list.
func Parse(data []byte) (*Torrent, error) {
	doc, err := scanDocument(data, true, topKeys...)
	if err != nil {
		return nil, err
	}
	sp, found := doc.keys["info"]
	if !found {
		return nil, invalidf("torrent: missing \"info\"")
	}
	if data[sp.start] != 'd' {
		return nil, invalidf("torrent: \"info\" is not a dictionary")
	}
	d := make(map[string]any, len(doc.keys))
	for k, sp := range doc.keys {
		v, err := bencode.Decode(bytes.NewReader(data[sp.start:sp.end]))
		if err != nil { // cannot happen after a successful scan; keep it safe
			return nil, fmt.Errorf("%w: %q: %v", ErrMalformed, k, err)
		}
		d[k] = v
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

	if doc.trailing > 0 {
		t.Warnings = append(t.Warnings, fmt.Errorf("%w: %d bytes ignored", ErrTrailingData, doc.trailing))
	}
	if doc.ndups > 0 {
		w := fmt.Errorf("%w outside \"info\": %q; the first value is used", ErrDuplicateKey, doc.dups)
		if doc.ndups > len(doc.dups) {
			w = fmt.Errorf("%w (%d duplicates in all)", w, doc.ndups)
		}
		t.Warnings = append(t.Warnings, w)
	}

	const ctx = "torrent"
	if t.Announce, _, err = getString(d, "announce", ctx, false); err != nil {
		return nil, err
	}
	if al, ok := d["announce-list"]; ok {
		var w error
		t.AnnounceList, w = parseAnnounceList(al)
		if w != nil {
			t.Warnings = append(t.Warnings, w)
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

// parseAnnounceList reads the BEP 12 tiers, keeping what is well-formed.
// Anything else (the list is not a list, a tier is not a list, a URL is not
// a string) is dropped and described by a warning wrapping
// ErrBadAnnounceList: the first problem and how many there were.
func parseAnnounceList(al any) ([][]string, error) {
	describe := func(v any) string {
		if s, ok := v.(string); ok && s == "" {
			return "an empty string"
		}
		return typeName(v)
	}
	tiers, ok := al.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: it is %s, not a list of tiers; ignored", ErrBadAnnounceList, describe(al))
	}
	var out [][]string
	var first string
	problems := 0
	note := func(format string, args ...any) {
		if problems == 0 {
			first = fmt.Sprintf(format, args...)
		}
		problems++
	}
	for i, tier := range tiers {
		l, ok := tier.([]any)
		if !ok {
			note("tier %d is %s, not a list", i, describe(tier))
			continue
		}
		urls := make([]string, 0, len(l))
		for j, e := range l {
			u, ok := e.(string)
			if !ok {
				note("tier %d entry %d is %s, not a URL", i, j, describe(e))
				continue
			}
			urls = append(urls, u)
		}
		out = append(out, urls)
	}
	if problems == 0 {
		return out, nil
	}
	if problems == 1 {
		return out, fmt.Errorf("%w: %s; ignored", ErrBadAnnounceList, first)
	}
	return out, fmt.Errorf("%w: %s (and %d more problems); ignored", ErrBadAnnounceList, first, problems-1)
}

// IsMagnet reports whether s is a magnet link rather than a file name.
func IsMagnet(s string) bool {
	const scheme = "magnet:"
	return len(s) >= len(scheme) && strings.EqualFold(s[:len(scheme)], scheme)
}

// Load reads and parses a .torrent file. A magnet link (IsMagnet) gets
// ErrMagnetNotSupported.
func Load(path string) (*Torrent, error) {
	if IsMagnet(path) {
		return nil, ErrMagnetNotSupported
	}
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
