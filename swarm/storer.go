package swarm

import (
	"context"
	"fmt"
	"time"
)

// The hand-off to Storage. The sub-chief queues verified pieces
// (pendingStore) for the storer goroutine, which blocks on Storage's
// back-pressure instead of the sub-chief's loop; each piece is released to
// its worker once stored, so a slow disk throttles the workers.

type storeReq struct {
	s     *workerSlot
	piece int
	data  []byte
}

type storeRes struct {
	storeReq
	err  error
	took time.Duration
}

// storePieces is the storer goroutine: it hands the verified pieces it is
// given on in to Storage, one at a time, blocking on Storage's
// back-pressure instead of the sub-chief, and answers each on out, until
// stop is closed.
func storePieces(ctx context.Context, st Storage, in <-chan storeReq, out chan<- storeRes, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case r := <-in:
			t0 := time.Now()
			err := st.Submit(ctx, r.piece, r.data)
			select {
			case out <- storeRes{storeReq: r, err: err, took: time.Since(t0)}:
			case <-stop:
				return
			}
		}
	}
}

// stored settles a piece the storer handed to Storage; the download
// completes only once the last of them is settled (checkComplete).
func (d *Download) stored(r storeRes) {
	d.storing--
	d.submitWait += r.took
	r.s.release(r.piece)
	if r.err != nil {
		recycle(d.storage, r.data)
		if d.ctx.Err() == nil {
			d.fail(fmt.Errorf("swarm: store piece %d: %w", r.piece, r.err))
		}
		return
	}
	d.refill(r.s, time.Now(), false)
	d.checkComplete()
}

// recycle gives a piece buffer that will not be stored back to the
// Storage's pool, if it keeps one.
func recycle(st Storage, b []byte) {
	if bp, ok := st.(BufferPool); ok && b != nil {
		bp.PutBuffer(b)
	}
}
