package wire

import (
	"errors"
	"slices"
	"strconv"

	"flotilla/internal/bencode"
)

// ErrBencode reports malformed bencode in a tracker reply.
var ErrBencode = errors.New("malformed bencode")

// maxDepth bounds list/dict nesting so hostile input cannot exhaust the stack.
const maxDepth = 32

// decodeBencode decodes exactly one value spanning all of b with the
// module's strict reader (internal/bencode): it never panics and allocates
// at most in proportion to len(b). Keys out of order are accepted, and so
// is a repeated key (the first value wins, as libtorrent reads it).
func decodeBencode(b []byte) (bencode.Value, error) {
	return bencode.Decode(b, bencode.Options{MaxDepth: maxDepth, Kind: ErrBencode, Duplicate: bencode.KeepFirst})
}

// encoder appends canonical bencode (sorted dictionary keys).
type encoder struct{ b []byte }

func (e *encoder) int(n int64) {
	e.b = append(e.b, 'i')
	e.b = strconv.AppendInt(e.b, n, 10)
	e.b = append(e.b, 'e')
}

func (e *encoder) str(s string) {
	e.b = strconv.AppendInt(e.b, int64(len(s)), 10)
	e.b = append(e.b, ':')
	e.b = append(e.b, s...)
}

// dict writes a dictionary whose entries are written by the funcs, in sorted key order.
func (e *encoder) dict(entries map[string]func()) {
	keys := make([]string, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	e.b = append(e.b, 'd')
	for _, k := range keys {
		e.str(k)
		entries[k]()
	}
	e.b = append(e.b, 'e')
}
