package bencode

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// DefaultMaxDepth is the nesting limit when Options.MaxDepth is zero. Real
// torrents nest at most 4 or 5 levels.
const DefaultMaxDepth = 64

// ErrSyntax is wrapped by every error about the input's bencode.
var ErrSyntax = errors.New("bencode: malformed")

// SyntaxError reports malformed bencode, or a limit exceeded, at Offset.
// It wraps ErrSyntax and Options.Kind, whose text starts the message.
type SyntaxError struct {
	Offset int    // of the offending byte (for a duplicate key: of the key)
	Msg    string // what is wrong, e.g. "integer with leading zero"
	kind   error
}

func (e *SyntaxError) Error() string {
	prefix := ErrSyntax.Error()
	if e.kind != nil {
		prefix = e.kind.Error()
	}
	return prefix + ": at offset " + strconv.Itoa(e.Offset) + ": " + e.Msg
}

// Unwrap gives errors.Is and errors.As both ErrSyntax and Options.Kind.
func (e *SyntaxError) Unwrap() []error {
	if e.kind == nil {
		return []error{ErrSyntax}
	}
	return []error{e.kind, ErrSyntax}
}

// Options are where callers genuinely differ. The zero value is the
// strict reader with DefaultMaxDepth.
type Options struct {
	// MaxDepth is the deepest nesting of lists and dictionaries accepted,
	// the outermost being level 1. Zero means DefaultMaxDepth.
	MaxDepth int
	// MaxStringLen, if positive, rejects a string (or key) that declares
	// more bytes. Without it a string is bounded by the input alone.
	MaxStringLen int
	// Kind, if non-nil, is the caller's sentinel: every SyntaxError wraps
	// it (besides ErrSyntax) and its text starts the message.
	Kind error
	// Duplicate decides a repeated dictionary key. Nil rejects it.
	// Otherwise it is called with the dictionary's nesting level (1 is the
	// outermost) and the key: true tolerates the repeat, whose value is
	// validated and skipped (the visitor never sees it, the first
	// occurrence wins); false rejects it.
	Duplicate func(depth int, key []byte) bool
}

// KeepFirst is an Options.Duplicate that tolerates every repeated key.
func KeepFirst(int, []byte) bool { return true }

// Kind is the type of a bencoded value, named by its first byte.
type Kind byte

// The four kinds, and Invalid for the end of the input or a byte that
// starts no value.
const (
	Invalid    Kind = 0
	KindInt    Kind = 'i'
	KindString Kind = 's'
	KindList   Kind = 'l'
	KindDict   Kind = 'd'
)

// Decoder reads bencode from one buffer. Methods that read a value consume
// exactly that value; after an error the Decoder must not be used again.
type Decoder struct {
	data  []byte
	pos   int
	depth int
	opt   Options
}

// NewDecoder returns a Decoder at the start of data.
func NewDecoder(data []byte, opt Options) *Decoder {
	if opt.MaxDepth <= 0 {
		opt.MaxDepth = DefaultMaxDepth
	}
	return &Decoder{data: data, opt: opt}
}

// Decode decodes the one value that spans all of data.
func Decode(data []byte, opt Options) (Value, error) {
	d := NewDecoder(data, opt)
	v, err := d.Value()
	if err != nil {
		return Value{}, err
	}
	return v, d.Finish()
}

// Pos is the offset of the next byte to read.
func (d *Decoder) Pos() int { return d.pos }

// Rest is the number of bytes not read yet.
func (d *Decoder) Rest() int { return len(d.data) - d.pos }

// Finish reports an error if any bytes follow what was read.
func (d *Decoder) Finish() error {
	if n := d.Rest(); n > 0 {
		return d.errorf("%d bytes of trailing garbage", n)
	}
	return nil
}

// errorf is kept out of line: inlined into the reading methods, its
// argument slices would enlarge their frames on the hot path.
//
//go:noinline
func (d *Decoder) errorf(format string, args ...any) error {
	return &SyntaxError{Offset: d.pos, Msg: fmt.Sprintf(format, args...), kind: d.opt.Kind}
}

// errEnd reports running out of input.
func (d *Decoder) errEnd() error {
	if len(d.data) == 0 {
		return d.errorf("empty input")
	}
	return d.errorf("unexpected end of input")
}

// Peek returns the kind of the next value without reading it: Invalid at
// the end of the input or before a byte that starts no value (then the
// reading methods say what is wrong).
func (d *Decoder) Peek() Kind {
	if d.pos >= len(d.data) {
		return Invalid
	}
	switch c := d.data[d.pos]; {
	case c == 'i', c == 'l', c == 'd':
		return Kind(c)
	case c >= '0' && c <= '9':
		return KindString
	}
	return Invalid
}

// Skip validates one value of any kind and moves past it.
func (d *Decoder) Skip() error {
	if d.pos >= len(d.data) {
		return d.errEnd()
	}
	switch c := d.data[d.pos]; {
	case c == 'i':
		_, err := d.integer()
		return err
	case c == 'l':
		return d.list(nil)
	case c == 'd':
		return d.dict(nil)
	case c >= '0' && c <= '9':
		_, _, err := d.str()
		return err
	default:
		return d.errorf("unexpected byte %q", c)
	}
}

// Int reads i<digits>e.
func (d *Decoder) Int() (int64, error) {
	if d.pos >= len(d.data) {
		return 0, d.errEnd()
	}
	if d.data[d.pos] != 'i' {
		return 0, d.errorf("expected an integer")
	}
	return d.integer()
}

// integer reads the integer whose 'i' is at d.pos.
func (d *Decoder) integer() (int64, error) {
	d.pos++ // 'i'
	neg := false
	if d.pos < len(d.data) && d.data[d.pos] == '-' {
		neg = true
		d.pos++
	}
	start := d.pos
	var v uint64
	for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
		c := uint64(d.data[d.pos] - '0')
		if v > (1<<63)/10 || v*10+c > 1<<63 {
			return 0, d.errorf("integer overflows 64 bits")
		}
		v = v*10 + c
		d.pos++
	}
	n := d.pos - start
	switch {
	case d.pos >= len(d.data):
		return 0, d.errorf("unterminated integer")
	case n == 0:
		return 0, d.errorf("integer without digits")
	case d.data[d.pos] != 'e':
		return 0, d.errorf("unexpected byte %q in integer", d.data[d.pos])
	case n > 1 && d.data[start] == '0':
		return 0, d.errorf("integer with leading zero")
	case neg && v == 0:
		return 0, d.errorf("negative zero")
	case !neg && v == 1<<63:
		return 0, d.errorf("integer overflows 64 bits")
	}
	d.pos++ // 'e'
	if neg {
		return -int64(v), nil // v == 1<<63 wraps to MinInt64, which is right
	}
	return int64(v), nil
}

// Bytes reads <length>:<bytes> and returns the bytes, which alias the
// input (capacity clipped, so appending to them cannot overwrite it).
func (d *Decoder) Bytes() ([]byte, error) {
	if d.pos >= len(d.data) {
		return nil, d.errEnd()
	}
	if c := d.data[d.pos]; c < '0' || c > '9' {
		return nil, d.errorf("expected a string")
	}
	start, end, err := d.str()
	if err != nil {
		return nil, err
	}
	return d.data[start:end:end], nil
}

// str reads the string whose first length digit is at d.pos and returns
// the span of its bytes.
func (d *Decoder) str() (start, end int, err error) {
	begin := d.pos
	n := 0
	for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
		n = n*10 + int(d.data[d.pos]-'0')
		if n > len(d.data) {
			return 0, 0, d.errorf("string length past end of input")
		}
		d.pos++
	}
	switch {
	case d.pos >= len(d.data):
		return 0, 0, d.errorf("unterminated string length")
	case d.data[d.pos] != ':':
		return 0, 0, d.errorf("unexpected byte %q in string length", d.data[d.pos])
	case d.pos-begin > 1 && d.data[begin] == '0':
		return 0, 0, d.errorf("string length with leading zero")
	case d.opt.MaxStringLen > 0 && n > d.opt.MaxStringLen:
		d.pos = begin
		return 0, 0, d.errorf("string of %d bytes is longer than %d", n, d.opt.MaxStringLen)
	}
	d.pos++ // ':'
	if n > len(d.data)-d.pos {
		return 0, 0, d.errorf("string length %d past end of input", n)
	}
	start = d.pos
	d.pos += n
	return start, d.pos, nil
}

func (d *Decoder) errDepth() error {
	return d.errorf("nesting deeper than %d", d.opt.MaxDepth)
}

// List reads a list, calling visit (if non-nil) with the Decoder at each
// element. visit reads the element with one reading method, or leaves it
// unread and List skips it.
func (d *Decoder) List(visit func() error) error {
	if d.pos >= len(d.data) {
		return d.errEnd()
	}
	if d.data[d.pos] != 'l' {
		return d.errorf("expected a list")
	}
	return d.list(visit)
}

// list reads the list whose 'l' is at d.pos.
func (d *Decoder) list(visit func() error) error {
	if d.depth++; d.depth > d.opt.MaxDepth {
		return d.errDepth()
	}
	d.pos++ // 'l'
	for {
		if d.pos >= len(d.data) {
			return d.errorf("unterminated list")
		}
		if d.data[d.pos] == 'e' {
			d.pos++
			d.depth--
			return nil
		}
		var err error
		if visit == nil {
			err = d.Skip()
		} else {
			start := d.pos
			if err = visit(); err == nil && d.pos == start {
				err = d.Skip()
			}
		}
		if err != nil {
			return err
		}
	}
}

// Dict reads a dictionary, calling visit (if non-nil) with each key and the
// Decoder at its value. visit reads the value with one reading method, or
// leaves it unread and Dict skips it. Keys may come in any order; a
// repeated key is handled by Options.Duplicate before visit would see it.
// key aliases the input.
func (d *Decoder) Dict(visit func(key []byte) error) error {
	if d.pos >= len(d.data) {
		return d.errEnd()
	}
	if d.data[d.pos] != 'd' {
		if d.depth == 0 {
			return d.errorf("top-level value is not a dictionary")
		}
		return d.errorf("expected a dictionary")
	}
	return d.dict(visit)
}

// dict reads the dictionary whose 'd' is at d.pos.
func (d *Decoder) dict(visit func(key []byte) error) error {
	if d.depth++; d.depth > d.opt.MaxDepth {
		return d.errDepth()
	}
	dictStart := d.pos
	d.pos++ // 'd'
	var prev []byte
	var seen map[string]struct{} // built only once keys are found out of order
	for {
		if d.pos >= len(d.data) {
			return d.errorf("unterminated dictionary")
		}
		if d.data[d.pos] == 'e' {
			d.pos++
			d.depth--
			return nil
		}
		if c := d.data[d.pos]; c < '0' || c > '9' {
			return d.errorf("dictionary key is not a string")
		}
		keyPos := d.pos
		ks, ke, err := d.str()
		if err != nil {
			return err
		}
		key := d.data[ks:ke:ke]
		// Keys in sorted order cannot repeat and cost one comparison; at
		// the first key out of order, the set of keys so far is built once.
		dup := false
		switch {
		case seen == nil && (keyPos == dictStart+1 || bytes.Compare(key, prev) > 0):
			prev = key
		case seen == nil:
			seen = keysBetween(d.data, dictStart, keyPos)
			fallthrough
		default:
			if _, dup = seen[string(key)]; !dup {
				seen[string(key)] = struct{}{}
			}
		}
		if dup {
			if d.opt.Duplicate == nil || !d.opt.Duplicate(d.depth, key) {
				d.pos = keyPos
				return d.errorf("duplicate dictionary key %q", key)
			}
			if err := d.Skip(); err != nil {
				return err
			}
			continue
		}
		if visit == nil {
			err = d.Skip()
		} else {
			start := d.pos
			if err = visit(key); err == nil && d.pos == start {
				err = d.Skip()
			}
		}
		if err != nil {
			return err
		}
	}
}

// keysBetween re-reads the already validated entries of the dictionary
// whose 'd' is at dictStart, up to the key at end, and returns their keys.
// It walks the bytes without checking them again: checking would re-scan
// nested dictionaries once per level, exponential in the depth.
func keysBetween(data []byte, dictStart, end int) map[string]struct{} {
	keys := make(map[string]struct{})
	for pos := dictStart + 1; pos < end; {
		ks, ke := strBounds(data, pos)
		keys[string(data[ks:ke])] = struct{}{}
		pos = valueEnd(data, ke)
	}
	return keys
}

// strBounds returns the bytes' span of the validated string at pos.
func strBounds(data []byte, pos int) (start, end int) {
	n := 0
	for ; data[pos] != ':'; pos++ {
		n = n*10 + int(data[pos]-'0')
	}
	return pos + 1, pos + 1 + n
}

// valueEnd returns the end of the validated value at pos.
func valueEnd(data []byte, pos int) int {
	open := 0
	for {
		switch c := data[pos]; {
		case c == 'i':
			pos += bytes.IndexByte(data[pos:], 'e') + 1
		case c == 'l' || c == 'd':
			open++
			pos++
			continue
		case c == 'e':
			open--
			pos++
		default:
			_, pos = strBounds(data, pos)
		}
		if open == 0 {
			return pos
		}
	}
}
