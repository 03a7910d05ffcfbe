package metainfo

import (
	"bytes"
	"fmt"
	"slices"
)

// MaxDepth is the deepest nesting of lists and dictionaries the scanner
// accepts. Real torrents nest at most 4 or 5 levels.
const MaxDepth = 64

// scanner is a strict bencode validator over an in-memory buffer. It never
// allocates per value except when a dictionary's keys are out of order (then
// it builds a set once to detect duplicates).
type scanner struct {
	data  []byte
	pos   int
	depth int
	// skipKeys disables key-order and duplicate checks. keysBetween uses it
	// to re-read already validated bytes: checking again there would re-scan
	// nested dictionaries once per level, exponential in the depth.
	skipKeys bool
	// lenient records duplicate keys in doc instead of failing, except in
	// the value of the top-level "info" key and for "info" itself.
	lenient bool
	doc     *document
}

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

func (s *scanner) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: at offset %d: %s", ErrMalformed, s.pos, fmt.Sprintf(format, args...))
}

// span is a half-open byte range [start, end) inside the scanned data.
type span struct{ start, end int }

// scanDocument validates that data starts with one bencoded dictionary and
// returns the value span of the first occurrence of each top-level key
// listed in want. Strictly (lenient false) nothing may follow the
// dictionary and no dictionary may repeat a key; leniently, trailing bytes
// and duplicate keys outside the top-level "info" value are recorded in the
// document instead.
func scanDocument(data []byte, lenient bool, want ...string) (*document, error) {
	doc := &document{}
	s := &scanner{data: data, lenient: lenient, doc: doc}
	if len(data) == 0 {
		return nil, s.errorf("empty input")
	}
	if data[0] != 'd' {
		return nil, s.errorf("top-level value is not a dictionary")
	}
	err := s.dict(func(key []byte, start, end int) {
		if _, ok := doc.keys[string(key)]; ok || !slices.Contains(want, string(key)) {
			return
		}
		if doc.keys == nil {
			doc.keys = make(map[string]span)
		}
		doc.keys[string(key)] = span{start, end}
	})
	if err != nil {
		return nil, err
	}
	if s.pos != len(data) {
		if !lenient {
			return nil, s.errorf("%d bytes of trailing garbage", len(data)-s.pos)
		}
		doc.trailing = len(data) - s.pos
	}
	return doc, nil
}

// duplicate handles a repeated key at keyPos: an error, or in lenient mode
// (outside "info") a note in the document.
func (s *scanner) duplicate(keyPos int, key []byte) error {
	if !s.lenient || (s.depth == 1 && string(key) == "info") {
		s.pos = keyPos
		return s.errorf("duplicate dictionary key %q", key)
	}
	s.doc.ndups++
	if len(s.doc.dups) < maxDupKeys {
		s.doc.dups = append(s.doc.dups, string(key))
	}
	return nil
}

// value scans one value of any type at s.pos.
func (s *scanner) value() error {
	if s.pos >= len(s.data) {
		return s.errorf("unexpected end of input")
	}
	switch c := s.data[s.pos]; {
	case c == 'i':
		_, err := s.integer()
		return err
	case c == 'l':
		return s.list()
	case c == 'd':
		return s.dict(nil)
	case c >= '0' && c <= '9':
		_, _, err := s.str()
		return err
	default:
		return s.errorf("unexpected byte %q", c)
	}
}

// integer scans i<digits>e and returns its value.
func (s *scanner) integer() (int64, error) {
	s.pos++ // 'i'
	neg := false
	if s.pos < len(s.data) && s.data[s.pos] == '-' {
		neg = true
		s.pos++
	}
	start := s.pos
	var v uint64
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		d := uint64(s.data[s.pos] - '0')
		if v > (1<<63)/10 || v*10+d > 1<<63 {
			return 0, s.errorf("integer overflows 64 bits")
		}
		v = v*10 + d
		s.pos++
	}
	n := s.pos - start
	switch {
	case s.pos >= len(s.data):
		return 0, s.errorf("unterminated integer")
	case n == 0:
		return 0, s.errorf("integer without digits")
	case s.data[s.pos] != 'e':
		return 0, s.errorf("unexpected byte %q in integer", s.data[s.pos])
	case n > 1 && s.data[start] == '0':
		return 0, s.errorf("integer with leading zero")
	case neg && v == 0:
		return 0, s.errorf("negative zero")
	case !neg && v == 1<<63:
		return 0, s.errorf("integer overflows 64 bits")
	}
	s.pos++ // 'e'
	if neg {
		return -int64(v), nil // v == 1<<63 wraps to MinInt64, which is right
	}
	return int64(v), nil
}

// str scans <len>:<bytes> and returns the span of the bytes.
func (s *scanner) str() (start, end int, err error) {
	begin := s.pos
	n := 0
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		n = n*10 + int(s.data[s.pos]-'0')
		if n > len(s.data) {
			return 0, 0, s.errorf("string length past end of input")
		}
		s.pos++
	}
	switch {
	case s.pos >= len(s.data):
		return 0, 0, s.errorf("unterminated string length")
	case s.data[s.pos] != ':':
		return 0, 0, s.errorf("unexpected byte %q in string length", s.data[s.pos])
	case s.pos-begin > 1 && s.data[begin] == '0':
		return 0, 0, s.errorf("string length with leading zero")
	}
	s.pos++ // ':'
	if n > len(s.data)-s.pos {
		return 0, 0, s.errorf("string length %d past end of input", n)
	}
	start = s.pos
	s.pos += n
	return start, s.pos, nil
}

func (s *scanner) enter() error {
	s.depth++
	if s.depth > MaxDepth {
		return s.errorf("nesting deeper than %d", MaxDepth)
	}
	return nil
}

func (s *scanner) list() error {
	if err := s.enter(); err != nil {
		return err
	}
	s.pos++ // 'l'
	for {
		if s.pos >= len(s.data) {
			return s.errorf("unterminated list")
		}
		if s.data[s.pos] == 'e' {
			s.pos++
			s.depth--
			return nil
		}
		if err := s.value(); err != nil {
			return err
		}
	}
}

// dict scans a dictionary; visit (if non-nil) sees each key and the span of
// its value.
func (s *scanner) dict(visit func(key []byte, start, end int)) error {
	if err := s.enter(); err != nil {
		return err
	}
	dictStart := s.pos
	s.pos++ // 'd'
	var prev []byte
	havePrev := false
	var seen map[string]struct{} // built only once keys are found out of order
	for {
		if s.pos >= len(s.data) {
			return s.errorf("unterminated dictionary")
		}
		if s.data[s.pos] == 'e' {
			s.pos++
			s.depth--
			return nil
		}
		if c := s.data[s.pos]; c < '0' || c > '9' {
			return s.errorf("dictionary key is not a string")
		}
		keyPos := s.pos
		ks, ke, err := s.str()
		if err != nil {
			return err
		}
		key := s.data[ks:ke]
		switch {
		case s.skipKeys:
		case seen != nil:
			if _, dup := seen[string(key)]; dup {
				if err := s.duplicate(keyPos, key); err != nil {
					return err
				}
			}
			seen[string(key)] = struct{}{}
		case !havePrev || bytes.Compare(key, prev) > 0:
			prev, havePrev = key, true
		default:
			// Out of order (or equal): fall back to a set of all keys so far.
			seen = s.keysBetween(dictStart, keyPos)
			if _, dup := seen[string(key)]; dup {
				if err := s.duplicate(keyPos, key); err != nil {
					return err
				}
			}
			seen[string(key)] = struct{}{}
		}
		vs := s.pos
		// The info dictionary is always strict: a repeated key there would
		// make the content, and the info-hash, ambiguous.
		strict := s.lenient && s.depth == 1 && string(key) == "info"
		if strict {
			s.lenient = false
		}
		err = s.value()
		if strict {
			s.lenient = true
		}
		if err != nil {
			return err
		}
		if visit != nil {
			visit(key, vs, s.pos)
		}
	}
}

// keysBetween re-reads the already validated dictionary entries between
// dictStart (the 'd') and end (the start of a key) and returns their keys.
func (s *scanner) keysBetween(dictStart, end int) map[string]struct{} {
	r := &scanner{data: s.data[:end], pos: dictStart + 1, depth: -1 << 30, skipKeys: true}
	keys := make(map[string]struct{})
	for r.pos < end {
		ks, ke, err := r.str()
		if err != nil {
			break // cannot happen: the bytes were validated
		}
		keys[string(s.data[ks:ke])] = struct{}{}
		if r.value() != nil {
			break
		}
	}
	return keys
}
