package piecestore

import (
	"encoding/binary"
	"sync/atomic"

	"flotilla/internal/bitfield"
)

// bitset is a fixed-size set of piece indices readable and writable from
// any goroutine. Bit i lives in word i/64 at position 63-i%64, so the words
// encoded big-endian are a BEP 3 bitfield.
type bitset struct{ w []atomic.Uint64 }

func newBitset(n int) bitset { return bitset{w: make([]atomic.Uint64, (n+63)/64)} }

func bitMask(i int) uint64 { return 1 << (63 - uint(i&63)) }

func (b *bitset) has(i int) bool { return b.w[i>>6].Load()&bitMask(i) != 0 }
func (b *bitset) set(i int)      { b.w[i>>6].Or(bitMask(i)) }
func (b *bitset) clear(i int)    { b.w[i>>6].And(^bitMask(i)) }

// bitfield returns the BEP 3 bitfield for n pieces.
func (b *bitset) bitfield(n int) bitfield.Bitfield {
	out := make([]byte, 8*len(b.w))
	for i := range b.w {
		binary.BigEndian.PutUint64(out[8*i:], b.w[i].Load())
	}
	return out[:bitfield.Len(n)]
}
