package metainfo

import (
	"slices"

	"flotilla/internal/bencode"
)

// MaxDepth is the deepest nesting of lists and dictionaries the scanner
// accepts. Real torrents nest at most 4 or 5 levels.
const MaxDepth = 64

// maxDupKeys is how many duplicate keys a document records by name; the
// rest are only counted.
const maxDupKeys = 8

// document is what scanDocument learns about a top-level dictionary.
type document struct {
	// keys holds the value span of the first occurrence of each wanted
	// top-level key.
	keys map[string]span
	// trailing is the number of bytes after the dictionary (lenient only).
	trailing int
	// dups names duplicate keys found outside "info" (lenient only), at
	// most maxDupKeys of them; ndups counts them all.
	dups  []string
	ndups int
}

// span is a half-open byte range [start, end) inside the scanned data.
type span struct{ start, end int }

// scanDocument validates, with the module's strict bencode reader, that
// data starts with one bencoded dictionary and returns the value span of
// the first occurrence of each top-level key listed in want. Strictly
// (lenient false) nothing may follow the dictionary and no dictionary may
// repeat a key; leniently, trailing bytes and duplicate keys outside the
// top-level "info" value are recorded in the document instead.
func scanDocument(data []byte, lenient bool, want ...string) (*document, error) {
	doc := &document{}
	inInfo := false
	opt := bencode.Options{MaxDepth: MaxDepth, Kind: ErrMalformed}
	if lenient {
		opt.Duplicate = func(depth int, key []byte) bool {
			// The info dictionary is always strict: a repeated key there
			// (or a second "info") would make the content, and the
			// info-hash, ambiguous.
			if inInfo || (depth == 1 && string(key) == "info") {
				return false
			}
			doc.ndups++
			if len(doc.dups) < maxDupKeys {
				doc.dups = append(doc.dups, string(key))
			}
			return true
		}
	}
	d := bencode.NewDecoder(data, opt)
	err := d.Dict(func(key []byte) error {
		start := d.Pos()
		inInfo = string(key) == "info"
		err := d.Skip()
		inInfo = false
		if err != nil || !slices.Contains(want, string(key)) {
			return err
		}
		if doc.keys == nil {
			doc.keys = make(map[string]span)
		}
		doc.keys[string(key)] = span{start, d.Pos()}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if d.Rest() > 0 {
		if !lenient {
			return nil, d.Finish()
		}
		doc.trailing = d.Rest()
	}
	return doc, nil
}
