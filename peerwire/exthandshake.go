package peerwire

import (
	"fmt"
	"slices"
	"strconv"
)

// ExtHandshake is the BEP 10 extension handshake (extended message ID 0).
// Zero-valued fields are omitted when encoding. Keys other than these are
// skipped when parsing (after checking they are well-formed bencode).
type ExtHandshake struct {
	M            map[string]int // "m": extension name -> local message ID (1..255; 0 = disabled)
	V            string         // "v": client name and version
	P            int            // "p": local TCP listen port
	Reqq         int            // "reqq": number of outstanding requests the client accepts
	MetadataSize int            // "metadata_size" (BEP 9)
	YourIP       []byte         // "yourip": the receiver's IP as seen by the sender (4 or 16 bytes)
	UploadOnly   bool           // "upload_only" (BEP 21): the sender is a seed / partial seed
}

// Limits applied while parsing an extension handshake.
const (
	maxBencodeDepth = 32
	maxExtString    = 64 * 1024
)

// Encode returns the canonical bencoding of h (keys sorted, zero fields
// omitted). Entries of M with IDs outside 0..255 or empty names are dropped.
func (h ExtHandshake) Encode() []byte {
	return h.AppendTo(nil)
}

// AppendTo appends the bencoding of h to dst.
func (h ExtHandshake) AppendTo(dst []byte) []byte {
	dst = append(dst, 'd')
	if len(h.M) > 0 {
		names := make([]string, 0, len(h.M))
		for k, v := range h.M {
			if k != "" && v >= 0 && v <= 255 {
				names = append(names, k)
			}
		}
		slices.Sort(names)
		dst = appendString(dst, "m")
		dst = append(dst, 'd')
		for _, k := range names {
			dst = appendString(dst, k)
			dst = appendInt(dst, int64(h.M[k]))
		}
		dst = append(dst, 'e')
	}
	if h.MetadataSize != 0 {
		dst = appendString(dst, "metadata_size")
		dst = appendInt(dst, int64(h.MetadataSize))
	}
	if h.P != 0 {
		dst = appendString(dst, "p")
		dst = appendInt(dst, int64(h.P))
	}
	if h.Reqq != 0 {
		dst = appendString(dst, "reqq")
		dst = appendInt(dst, int64(h.Reqq))
	}
	if h.UploadOnly {
		dst = appendString(dst, "upload_only")
		dst = appendInt(dst, 1)
	}
	if h.V != "" {
		dst = appendString(dst, "v")
		dst = appendString(dst, h.V)
	}
	if len(h.YourIP) > 0 {
		dst = appendString(dst, "yourip")
		dst = appendString(dst, string(h.YourIP))
	}
	return append(dst, 'e')
}

func appendString(dst []byte, s string) []byte {
	dst = strconv.AppendInt(dst, int64(len(s)), 10)
	dst = append(dst, ':')
	return append(dst, s...)
}

func appendInt(dst []byte, v int64) []byte {
	dst = append(dst, 'i')
	dst = strconv.AppendInt(dst, v, 10)
	return append(dst, 'e')
}

// ParseExtHandshake decodes a BEP 10 handshake payload (the bytes after the
// extended ID). The payload must be exactly one bencoded dictionary; any
// bencode error (bad syntax, trailing bytes, non-canonical integers, nesting
// over 32 levels) gives ErrBadExtHandshake. Known keys with an unexpected
// type or out-of-range value are ignored, as other clients do, and so are
// "m" entries whose ID is not in 0..255.
func ParseExtHandshake(b []byte) (ExtHandshake, error) {
	var h ExtHandshake
	d := decoder{b: b}
	if err := d.dict(func(key string) error {
		switch key {
		case "m":
			if d.peek() != 'd' {
				return d.skip(0)
			}
			return d.dict(func(name string) error {
				if d.peek() != 'i' {
					return d.skip(1)
				}
				v, err := d.int()
				if err != nil {
					return err
				}
				if name != "" && v >= 0 && v <= 255 {
					if h.M == nil {
						h.M = make(map[string]int)
					}
					h.M[name] = int(v)
				}
				return nil
			})
		case "v":
			return d.optString(func(s []byte) { h.V = string(s) })
		case "yourip":
			return d.optString(func(s []byte) {
				if len(s) == 4 || len(s) == 16 {
					h.YourIP = append([]byte(nil), s...)
				}
			})
		case "p":
			return d.optInt(func(v int64) {
				if v > 0 && v <= 65535 {
					h.P = int(v)
				}
			})
		case "reqq":
			return d.optInt(func(v int64) {
				if v > 0 && v <= 1<<20 {
					h.Reqq = int(v)
				}
			})
		case "metadata_size":
			return d.optInt(func(v int64) {
				if v > 0 && v <= 1<<30 {
					h.MetadataSize = int(v)
				}
			})
		case "upload_only":
			return d.optInt(func(v int64) { h.UploadOnly = v != 0 })
		}
		return d.skip(0)
	}); err != nil {
		return ExtHandshake{}, err
	}
	if d.pos != len(b) {
		return ExtHandshake{}, fmt.Errorf("%w: %d trailing bytes", ErrBadExtHandshake, len(b)-d.pos)
	}
	return h, nil
}

// decoder is a tiny strict bencode reader over a byte slice.
type decoder struct {
	b   []byte
	pos int
}

func (d *decoder) errf(format string, args ...any) error {
	return fmt.Errorf("%w: at offset %d: %s", ErrBadExtHandshake, d.pos, fmt.Sprintf(format, args...))
}

func (d *decoder) peek() byte {
	if d.pos >= len(d.b) {
		return 0
	}
	return d.b[d.pos]
}

// dict parses a dictionary, calling f for each key with the decoder
// positioned at the value; f must consume exactly the value. Key order is
// not enforced (some clients do not sort); for a repeated key the last
// value wins.
func (d *decoder) dict(f func(key string) error) error {
	if d.peek() != 'd' {
		return d.errf("expected dictionary")
	}
	d.pos++
	for d.peek() != 'e' {
		if d.pos >= len(d.b) {
			return d.errf("unterminated dictionary")
		}
		key, err := d.str()
		if err != nil {
			return err
		}
		if err := f(string(key)); err != nil {
			return err
		}
	}
	d.pos++
	return nil
}

func (d *decoder) str() ([]byte, error) {
	start := d.pos
	n := 0
	for d.pos < len(d.b) && d.b[d.pos] >= '0' && d.b[d.pos] <= '9' {
		if d.pos > start && d.b[start] == '0' {
			return nil, d.errf("leading zero in string length")
		}
		n = n*10 + int(d.b[d.pos]-'0')
		if n > maxExtString {
			return nil, d.errf("string too long")
		}
		d.pos++
	}
	if d.pos == start || d.peek() != ':' {
		return nil, d.errf("expected string")
	}
	d.pos++
	if len(d.b)-d.pos < n {
		return nil, d.errf("string of %d bytes truncated", n)
	}
	s := d.b[d.pos : d.pos+n]
	d.pos += n
	return s, nil
}

func (d *decoder) int() (int64, error) {
	if d.peek() != 'i' {
		return 0, d.errf("expected integer")
	}
	d.pos++
	start := d.pos
	for d.pos < len(d.b) && d.b[d.pos] != 'e' {
		d.pos++
	}
	if d.pos >= len(d.b) {
		return 0, d.errf("unterminated integer")
	}
	s := d.b[start:d.pos]
	d.pos++
	if !canonicalInt(s) {
		return 0, d.errf("bad integer %q", s)
	}
	v, err := strconv.ParseInt(string(s), 10, 64)
	if err != nil {
		return 0, d.errf("bad integer %q", s)
	}
	return v, nil
}

// canonicalInt reports whether s is a canonical bencode integer body:
// "0", or an optional '-' then a non-zero digit then digits.
func canonicalInt(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	if s[0] == '-' {
		s = s[1:]
		if len(s) == 0 || s[0] == '0' {
			return false
		}
	} else if s[0] == '0' && len(s) > 1 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func (d *decoder) optString(f func([]byte)) error {
	if c := d.peek(); c < '0' || c > '9' {
		return d.skip(0)
	}
	s, err := d.str()
	if err == nil {
		f(s)
	}
	return err
}

func (d *decoder) optInt(f func(int64)) error {
	if d.peek() != 'i' {
		return d.skip(0)
	}
	v, err := d.int()
	if err == nil {
		f(v)
	}
	return err
}

// skip consumes one well-formed value of any type.
func (d *decoder) skip(depth int) error {
	if depth > maxBencodeDepth {
		return d.errf("nesting too deep")
	}
	switch c := d.peek(); {
	case c == 'i':
		_, err := d.int()
		return err
	case c >= '0' && c <= '9':
		_, err := d.str()
		return err
	case c == 'l':
		d.pos++
		for d.peek() != 'e' {
			if d.pos >= len(d.b) {
				return d.errf("unterminated list")
			}
			if err := d.skip(depth + 1); err != nil {
				return err
			}
		}
		d.pos++
		return nil
	case c == 'd':
		return d.dict(func(string) error { return d.skip(depth + 1) })
	}
	return d.errf("unexpected byte %q", d.peek())
}
