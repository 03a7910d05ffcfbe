// Package mpcheck checks the structure of a msgpack value before it is
// handed to github.com/vmihailenco/msgpack/v5, whose decoder allocates by
// the lengths a value declares (up to 1 MiB per string or byte slice and
// a million elements per container, and without limit for some typed
// slices) before it finds out that the input is far shorter. Check walks
// the bytes without allocating per value and refuses any declared length
// that the remaining input cannot hold, so that decoding a checked value
// allocates at most a small multiple of its size.
//
// Every decoder of untrusted msgpack in the module (delegate frames,
// cluster metadata) runs it first.
package mpcheck

import (
	"errors"
	"fmt"
)

// ErrMalformed reports input that fails Check.
var ErrMalformed = errors.New("malformed msgpack")

// Check walks one msgpack value that must fill b exactly. It rejects
// truncated values, trailing bytes, the reserved code 0xc1, nesting deeper
// than maxDepth, a string, binary or extension longer than the bytes left,
// an array or map that declares more elements than bytes remain, and
// values whose containers declare more than budget elements in all.
func Check(b []byte, maxDepth, budget int) error {
	var stack []int
	pending := 1
	i := 0
	for {
		for pending == 0 {
			if len(stack) == 0 {
				if i != len(b) {
					return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(b)-i)
				}
				return nil
			}
			pending = stack[len(stack)-1]
			stack = stack[:len(stack)-1]
		}
		if i >= len(b) {
			return fmt.Errorf("%w: truncated", ErrMalformed)
		}
		pending--
		var skip, items int
		var err error
		i, skip, items, err = header(b, i)
		if err != nil {
			return err
		}
		rest := len(b) - i
		if items >= 0 {
			if items > rest {
				return fmt.Errorf("%w: container of %d items in %d bytes", ErrMalformed, items, rest)
			}
			if budget -= items; budget < 0 {
				return fmt.Errorf("%w: more container elements than allowed", ErrMalformed)
			}
			if items > 0 {
				if len(stack) >= maxDepth {
					return fmt.Errorf("%w: nested deeper than %d", ErrMalformed, maxDepth)
				}
				stack = append(stack, pending)
				pending = items
			}
			continue
		}
		if skip > rest {
			return fmt.Errorf("%w: %d-byte value in %d bytes", ErrMalformed, skip, rest)
		}
		i += skip
	}
}

// header reads the header of the value whose type byte is b[i]: it returns
// the index just past the header (the type byte and any length field), the
// bytes of payload that follow it and, for an array or map, the values it
// declares (-1 for any other type). A declared length beyond len(b) is
// returned as len(b)+1.
func header(b []byte, i int) (next, skip, items int, err error) {
	c := b[i]
	i++
	rest := len(b) - i
	be := func(k int) (int, bool) { // a big-endian length of k bytes
		if rest < k {
			return 0, false
		}
		var n uint64
		for _, x := range b[i : i+k] {
			n = n<<8 | uint64(x)
		}
		i += k
		rest -= k
		if n > uint64(len(b)) {
			return len(b) + 1, true // surely too long; caught by the caller
		}
		return int(n), true
	}
	skip, items = 0, -1
	ok := true
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
	case c >= 0x80 && c <= 0x8f:
		items = 2 * int(c&0x0f)
	case c >= 0x90 && c <= 0x9f:
		items = int(c & 0x0f)
	case c >= 0xa0 && c <= 0xbf:
		skip = int(c & 0x1f)
	case c == 0xc4 || c == 0xd9:
		skip, ok = be(1)
	case c == 0xc5 || c == 0xda:
		skip, ok = be(2)
	case c == 0xc6 || c == 0xdb:
		skip, ok = be(4)
	case c == 0xc7:
		skip, ok = be(1)
		skip++
	case c == 0xc8:
		skip, ok = be(2)
		skip++
	case c == 0xc9:
		skip, ok = be(4)
		skip++
	case c == 0xca || c == 0xce || c == 0xd2:
		skip = 4
	case c == 0xcb || c == 0xcf || c == 0xd3:
		skip = 8
	case c == 0xcc || c == 0xd0:
		skip = 1
	case c == 0xcd || c == 0xd1:
		skip = 2
	case c >= 0xd4 && c <= 0xd8:
		skip = 1 + 1<<(c-0xd4)
	case c == 0xdc:
		items, ok = be(2)
	case c == 0xdd:
		items, ok = be(4)
	case c == 0xde:
		items, ok = be(2)
		items *= 2
	case c == 0xdf:
		items, ok = be(4)
		items *= 2
	default: // 0xc1
		return 0, 0, 0, fmt.Errorf("%w: reserved code 0x%02x", ErrMalformed, c)
	}
	if !ok {
		return 0, 0, 0, fmt.Errorf("%w: truncated", ErrMalformed)
	}
	return i, skip, items, nil
}
