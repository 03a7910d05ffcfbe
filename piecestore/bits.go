package piecestore

import (
	"context"
	"encoding/binary"
	"sync"
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

// budget is a byte-weighted semaphore bounding the data queued for writing.
// A request is admitted when it fits or when nothing is queued (so a budget
// below one piece still makes progress).
type budget struct {
	mu    sync.Mutex
	used  int64
	limit int64
	wake  chan struct{} // closed and replaced on every release
}

func newBudget(limit int64) *budget { return &budget{limit: limit, wake: make(chan struct{})} }

// acquire waits until n bytes fit, ctx is done or stop is closed.
func (b *budget) acquire(ctx context.Context, n int64, stop <-chan struct{}) error {
	for {
		b.mu.Lock()
		if b.used == 0 || b.used+n <= b.limit {
			b.used += n
			b.mu.Unlock()
			return nil
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		case <-stop:
			return ErrClosed
		}
	}
}

func (b *budget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	close(b.wake)
	b.wake = make(chan struct{})
	b.mu.Unlock()
}

func (b *budget) queued() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}
