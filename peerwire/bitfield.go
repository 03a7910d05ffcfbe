package peerwire

import (
	"fmt"
	"math/bits"
)

// Bitfield is a BEP 3 piece bitfield: bit i is the (7 - i%8)th bit of byte
// i/8 (high bit first). Its length is ceil(n/8) bytes for n pieces and the
// spare bits at the end must stay zero. Indexes outside the bitfield are
// never set: Has reports false and Set/Clear do nothing.
type Bitfield []byte

// New returns an all-zero bitfield for n pieces (n < 0 is treated as 0).
func New(n int) Bitfield {
	if n < 0 {
		n = 0
	}
	return make(Bitfield, (n+7)/8)
}

// NewFull returns a bitfield for n pieces with every piece set (spare bits
// clear), e.g. for a have-all message.
func NewFull(n int) Bitfield {
	b := New(n)
	for i := range b {
		b[i] = 0xff
	}
	if r := n % 8; r != 0 && len(b) > 0 {
		b[len(b)-1] = 0xff << (8 - r)
	}
	return b
}

// FromBytes validates p as a bitfield for n pieces and returns a copy.
func FromBytes(p []byte, n int) (Bitfield, error) {
	if err := Validate(p, n); err != nil {
		return nil, err
	}
	return append(Bitfield(nil), p...), nil
}

// Validate checks that b is a bitfield for n pieces: exactly ceil(n/8) bytes
// and no spare bits set. Errors wrap ErrBadBitfield.
func Validate(b []byte, n int) error {
	if n < 0 {
		return fmt.Errorf("%w: negative piece count %d", ErrBadBitfield, n)
	}
	if want := (n + 7) / 8; len(b) != want {
		return fmt.Errorf("%w: length %d, want %d for %d pieces", ErrBadBitfield, len(b), want, n)
	}
	if r := n % 8; r != 0 {
		if spare := b[len(b)-1] & (0xff >> r); spare != 0 {
			return fmt.Errorf("%w: spare bits set (%#02x)", ErrBadBitfield, spare)
		}
	}
	return nil
}

// Has reports whether piece i is set.
func (b Bitfield) Has(i int) bool {
	if i < 0 || i>>3 >= len(b) {
		return false
	}
	return b[i>>3]&(0x80>>(i&7)) != 0
}

// Set marks piece i (no-op if out of range).
func (b Bitfield) Set(i int) {
	if i < 0 || i>>3 >= len(b) {
		return
	}
	b[i>>3] |= 0x80 >> (i & 7)
}

// Clear unmarks piece i (no-op if out of range).
func (b Bitfield) Clear(i int) {
	if i < 0 || i>>3 >= len(b) {
		return
	}
	b[i>>3] &^= 0x80 >> (i & 7)
}

// Count returns the number of set bits.
func (b Bitfield) Count() int {
	n := 0
	i := 0
	for ; i+8 <= len(b); i += 8 {
		n += bits.OnesCount64(uint64(b[i]) | uint64(b[i+1])<<8 | uint64(b[i+2])<<16 | uint64(b[i+3])<<24 |
			uint64(b[i+4])<<32 | uint64(b[i+5])<<40 | uint64(b[i+6])<<48 | uint64(b[i+7])<<56)
	}
	for ; i < len(b); i++ {
		n += bits.OnesCount8(b[i])
	}
	return n
}

// All reports whether all n pieces are set.
func (b Bitfield) All(n int) bool { return Validate(b, n) == nil && b.Count() == n }

// Bytes returns the underlying bytes (not a copy), as sent in a bitfield
// message.
func (b Bitfield) Bytes() []byte { return b }

// Clone returns a copy of b.
func (b Bitfield) Clone() Bitfield { return append(Bitfield(nil), b...) }
