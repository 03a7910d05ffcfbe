package piecestore

import (
	"context"
	"sync"
)

// writeBudget is a byte-weighted semaphore bounding the data queued for writing.
// A request is admitted when it fits or when nothing is queued (so a budget
// below one piece still makes progress).
type writeBudget struct {
	mu    sync.Mutex
	used  int64
	limit int64
	wake  chan struct{} // closed and replaced on every release
}

func newWriteBudget(limit int64) *writeBudget {
	return &writeBudget{limit: limit, wake: make(chan struct{})}
}

// acquire waits until n bytes fit, ctx is done or stop is closed.
func (b *writeBudget) acquire(ctx context.Context, n int64, stop <-chan struct{}) error {
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

func (b *writeBudget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	close(b.wake)
	b.wake = make(chan struct{})
	b.mu.Unlock()
}

func (b *writeBudget) queued() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}
