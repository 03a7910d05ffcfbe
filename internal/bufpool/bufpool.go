// Package bufpool is a bounded pool of piece buffers, all of one
// capacity: a store hands them to the swarm for the pieces it downloads
// and takes them back once written or shipped, so that a piece is not a
// fresh allocation page-faulted in block by block (issue 15). The local
// store (piecestore) and a swarm node's store (delegate) share it.
package bufpool

import "sync/atomic"

// Pool holds at most its bound of buffers of capacity size. Safe for
// concurrent use.
type Pool struct {
	size int64
	ch   chan []byte
	off  atomic.Bool
}

// New returns a pool of up to n buffers of capacity size.
func New(size int64, n int) *Pool {
	return &Pool{size: size, ch: make(chan []byte, max(n, 0))}
}

// Get returns a buffer of length n (at most the pool's size) from the
// pool, or a new one.
func (p *Pool) Get(n int) []byte {
	select {
	case b := <-p.ch:
		return b[:n]
	default:
		return make([]byte, n, p.size)
	}
}

// Put gives b, which nobody uses any more, back to the pool if it has
// the pool's capacity, there is room and the pool is not off.
func (p *Pool) Put(b []byte) {
	if int64(cap(b)) != p.size || p.off.Load() {
		return
	}
	select {
	case p.ch <- b[:0]:
		if p.off.Load() { // switched off meanwhile: take it out again
			p.Drain()
		}
	default:
	}
}

// Drain lets every pooled buffer go to the collector.
func (p *Pool) Drain() {
	for {
		select {
		case <-p.ch:
		default:
			return
		}
	}
}

// Off drains the pool and pools nothing more; Get still allocates.
func (p *Pool) Off() {
	if !p.off.Swap(true) {
		p.Drain()
	}
}

// Len is the number of pooled buffers.
func (p *Pool) Len() int { return len(p.ch) }
