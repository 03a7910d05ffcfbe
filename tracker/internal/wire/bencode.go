package wire

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// ErrBencode reports malformed bencode in a tracker reply.
var ErrBencode = errors.New("malformed bencode")

// maxDepth bounds list/dict nesting so hostile input cannot exhaust the stack.
const maxDepth = 32

// value is a decoded bencode value: exactly one of the fields is meaningful,
// chosen by kind. Strings alias the input buffer.
type value struct {
	kind byte // 'i', 's', 'l', 'd'
	i    int64
	s    []byte
	list []value
	dict map[string]value
}

// decodeBencode decodes exactly one value spanning all of b. It never panics
// and allocates at most in proportion to len(b): string lengths are checked
// against the remaining input before use.
func decodeBencode(b []byte) (value, error) {
	d := decoder{b: b}
	v, err := d.value(0)
	if err != nil {
		return value{}, err
	}
	if d.pos != len(b) {
		return value{}, fmt.Errorf("%w: %d trailing bytes", ErrBencode, len(b)-d.pos)
	}
	return v, nil
}

type decoder struct {
	b   []byte
	pos int
}

func (d *decoder) errf(format string, args ...any) error {
	return fmt.Errorf("%w at offset %d: %s", ErrBencode, d.pos, fmt.Sprintf(format, args...))
}

func (d *decoder) value(depth int) (value, error) {
	if depth > maxDepth {
		return value{}, d.errf("nesting deeper than %d", maxDepth)
	}
	if d.pos >= len(d.b) {
		return value{}, d.errf("unexpected end")
	}
	switch c := d.b[d.pos]; {
	case c == 'i':
		d.pos++
		end := bytes.IndexByte(d.b[d.pos:], 'e')
		if end < 0 {
			return value{}, d.errf("unterminated integer")
		}
		digits := d.b[d.pos : d.pos+end]
		if !validInt(digits) {
			return value{}, d.errf("bad integer %q", digits)
		}
		n, err := strconv.ParseInt(string(digits), 10, 64)
		if err != nil {
			return value{}, d.errf("integer out of range")
		}
		d.pos += end + 1
		return value{kind: 'i', i: n}, nil
	case c >= '0' && c <= '9':
		s, err := d.str()
		if err != nil {
			return value{}, err
		}
		return value{kind: 's', s: s}, nil
	case c == 'l':
		d.pos++
		var list []value
		for {
			if d.pos >= len(d.b) {
				return value{}, d.errf("unterminated list")
			}
			if d.b[d.pos] == 'e' {
				d.pos++
				return value{kind: 'l', list: list}, nil
			}
			v, err := d.value(depth + 1)
			if err != nil {
				return value{}, err
			}
			list = append(list, v)
		}
	case c == 'd':
		d.pos++
		dict := map[string]value{}
		for {
			if d.pos >= len(d.b) {
				return value{}, d.errf("unterminated dictionary")
			}
			if d.b[d.pos] == 'e' {
				d.pos++
				return value{kind: 'd', dict: dict}, nil
			}
			if c := d.b[d.pos]; c < '0' || c > '9' {
				return value{}, d.errf("dictionary key is not a string")
			}
			k, err := d.str()
			if err != nil {
				return value{}, err
			}
			v, err := d.value(depth + 1)
			if err != nil {
				return value{}, err
			}
			dict[string(k)] = v // trackers are lenient about order; last duplicate wins
		}
	default:
		return value{}, d.errf("unexpected byte %q", c)
	}
}

func (d *decoder) str() ([]byte, error) {
	colon := bytes.IndexByte(d.b[d.pos:], ':')
	if colon < 0 || colon > 10 {
		return nil, d.errf("bad string length")
	}
	digits := d.b[d.pos : d.pos+colon]
	if len(digits) == 0 || (len(digits) > 1 && digits[0] == '0') {
		return nil, d.errf("bad string length %q", digits)
	}
	n := 0
	for _, c := range digits {
		if c < '0' || c > '9' {
			return nil, d.errf("bad string length %q", digits)
		}
		n = n*10 + int(c-'0')
	}
	start := d.pos + colon + 1
	if n > len(d.b)-start {
		return nil, d.errf("string of %d bytes runs past the end", n)
	}
	d.pos = start + n
	return d.b[start:d.pos:d.pos], nil
}

// validInt accepts the canonical bencode integer forms: "0", "-N", "N" with
// no leading zeros and no "-0".
func validInt(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || (b[0] == '0' && (len(b) > 1 || neg)) {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
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
