// Package bitfield is the one piece bitfield of the module: the BEP 3 bit
// order (bit i is the (7 - i%8)th bit of byte i/8, high bit first), used as
// is on the wire (peerwire's bitfield message), on disk (piecestore's resume
// record, delegate's kept-*.bits files) and in memory (what a peer has, what
// we advertise). It lives below peerwire because the disk formats and the
// swarm use the same bytes without speaking the wire protocol.
//
// A Bitfield is a plain byte slice for one owner: no locks, no goroutines.
// Indexes outside it are never set: Has reports false and Set/Clear do
// nothing, so a hostile index cannot panic the caller.
package bitfield

import (
	"fmt"
	"math/bits"
)

// Bitfield is a BEP 3 piece bitfield of ceil(n/8) bytes for n pieces; the
// spare bits at the end stay zero.
type Bitfield []byte

// Len returns the length in bytes of the bitfield for n pieces.
func Len(n int) int {
	if n < 0 {
		return 0
	}
	return (n + 7) / 8
}

// New returns an all-zero bitfield for n pieces (n < 0 is treated as 0).
func New(n int) Bitfield { return make(Bitfield, Len(n)) }

// Full returns a bitfield for n pieces with every piece set (spare bits
// clear), e.g. for a have-all message.
func Full(n int) Bitfield {
	b := New(n)
	for i := range b {
		b[i] = 0xff
	}
	if r := n % 8; r != 0 && len(b) > 0 {
		b[len(b)-1] = 0xff << (8 - r)
	}
	return b
}

// Validate checks that b is a bitfield for n pieces: exactly Len(n) bytes
// and no spare bits set. The error says what is wrong, without a prefix, for
// the caller to wrap in its own sentinel.
func Validate(b []byte, n int) error {
	if n < 0 {
		return fmt.Errorf("negative piece count %d", n)
	}
	if want := Len(n); len(b) != want {
		return fmt.Errorf("length %d, want %d for %d pieces", len(b), want, n)
	}
	if r := n % 8; r != 0 {
		if spare := b[len(b)-1] & (0xff >> r); spare != 0 {
			return fmt.Errorf("spare bits set (%#02x)", spare)
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
// message or written to disk.
func (b Bitfield) Bytes() []byte { return b }

// Clone returns a copy of b.
func (b Bitfield) Clone() Bitfield { return append(Bitfield(nil), b...) }
