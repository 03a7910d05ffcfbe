package delegate

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"time"

	"github.com/hashicorp/yamux"

	"flotilla/swarm"
)

// run owns the event outbox: it takes pieces from the data readers only
// while fewer than MaxPiecesInFlight are unreleased, and closes Events at
// the end.
func (r *RemoteSwarm) run() {
	defer close(r.runDone)
	defer close(r.events)
	r.reserveMemory()
	defer r.releaseMemory()
	var outbox []swarm.WorkerEvent
	dead := r.dead
	failed := false
	// After the node's Left: the pieces it shipped in all, the pieces
	// read so far, and until when the next one may take (PieceTimeout
	// after Left or the last piece).
	var shipped, received uint64
	var left bool
	var leftBy time.Time
	checkLeft := func(now time.Time) {
		switch {
		case !left || failed:
		case received >= shipped:
			r.fail(fmt.Errorf("%w: %s shipped its %d pieces", ErrNodeLeft, r.name, shipped))
		case now.After(leftBy):
			r.fail(fmt.Errorf("%w: %s left, but %d of the %d pieces it shipped did not arrive (none for %v)",
				ErrNodeLeft, r.name, shipped-received, shipped, r.cfg.PieceTimeout))
		}
	}
	tick := time.NewTicker(pieceCheckInterval)
	defer tick.Stop()
	for {
		var out chan swarm.WorkerEvent
		var first swarm.WorkerEvent
		if len(outbox) > 0 {
			out, first = r.events, outbox[0]
		}
		var pieceIn, ctrlIn chan swarm.WorkerEvent
		var leftIn chan uint64
		if !failed {
			ctrlIn, leftIn = r.ctrlIn, r.leftIn
			if r.unreleased.Load() < int64(r.cfg.MaxPiecesInFlight) {
				pieceIn = r.pieceIn
			}
		}
		select {
		case <-r.closing:
			return
		case out <- first:
			outbox[0] = swarm.WorkerEvent{}
			outbox = outbox[1:]
			if first.Kind == swarm.EventFailed {
				return
			}
		case <-r.released:
		case <-r.wake: // PieceAlert
			r.checkReads()
		case now := <-tick.C:
			r.checkReads()
			checkLeft(now)
		case ev := <-pieceIn:
			outbox = append(outbox, ev)
			r.unreleased.Add(1)
			received++
			if left {
				leftBy = time.Now().Add(r.cfg.PieceTimeout) // a deadline on progress, not on the sub-chief's pace
			}
			checkLeft(time.Now())
		case n := <-leftIn:
			shipped, left, leftBy = n, true, time.Now().Add(r.cfg.PieceTimeout)
			checkLeft(time.Now())
		case ev := <-ctrlIn:
			outbox = append(outbox, ev)
		case <-dead:
			dead, failed = nil, true
			outbox = append(outbox, swarm.WorkerEvent{Kind: swarm.EventFailed, Err: r.err})
		}
	}
}

// pieceStep is how much of a piece is read (and allocated) at a time: a
// piece's buffer grows with the bytes that arrived, not with the length
// its header declares.
const pieceStep = 256 << 10

// readPiece reads the n bytes of piece index that follow its header,
// within PieceTimeout plus n at MinPieceRate: a watchdog packet, whose
// alert ends the read (remote_watch.go).
func (r *RemoteSwarm) readPiece(st *yamux.Stream, index, n int) (data []byte, err error) {
	limit := r.cfg.PieceTimeout + time.Duration(float64(n)/float64(r.cfg.MinPieceRate)*float64(time.Second))
	if !r.startRead(st, limit) {
		return nil, ErrClosed
	}
	defer func() { r.endRead(st, err == nil) }()
	if pool := r.pool.Load(); pool != nil {
		return r.readPooled(st, *pool, index, n, limit)
	}
	data = make([]byte, 0, min(n, pieceStep))
	for len(data) < n {
		if len(data) == cap(data) {
			data = slices.Grow(data, min(n-len(data), max(len(data), pieceStep)))
		}
		k, err := st.Read(data[len(data):min(cap(data), n)])
		data = data[:len(data)+k]
		if err == nil {
			continue
		}
		if len(data) == n && errors.Is(err, io.EOF) {
			break
		}
		return nil, r.readErr(err, index, len(data), n, limit)
	}
	return data, nil
}

// readPooled is readPiece with a buffer from pool, taken once the piece's
// first byte arrived (a header alone pins no buffer; one that trickles
// pins at most one buffer per data stream until its deadline). On error
// the buffer goes back to the pool.
func (r *RemoteSwarm) readPooled(st *yamux.Stream, pool swarm.BufferPool, index, n int, limit time.Duration) ([]byte, error) {
	var first [1]byte
	got, err := st.Read(first[:])
	for got == 0 && err == nil {
		got, err = st.Read(first[:])
	}
	if got == 0 {
		return nil, r.readErr(err, index, 0, n, limit)
	}
	data := pool.GetBuffer(index)
	if len(data) != n {
		// Not the store's piece length (cannot happen: the header was
		// checked against the same torrent): allocate.
		pool.PutBuffer(data)
		data = make([]byte, n)
	}
	data[0] = first[0]
	if k, err := io.ReadFull(st, data[1:]); err != nil {
		pool.PutBuffer(data)
		return nil, r.readErr(err, index, 1+k, n, limit)
	}
	return data, nil
}

// readErr says why a piece's read failed after got of its n bytes.
func (r *RemoteSwarm) readErr(err error, index, got, n int, limit time.Duration) error {
	if errors.Is(err, yamux.ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: piece %d: %d of %d bytes when its deadline (%v) passed (a node must send a piece within %v plus its length at %d KiB/s)",
			ErrTooSlow, index, got, n, limit.Round(time.Millisecond), r.cfg.PieceTimeout, r.cfg.MinPieceRate>>10)
	}
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// rate sanitizes a reported rate (NaN, infinite or negative: 0).
func rate(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) || x < 0 {
		return 0
	}
	return x
}

// readData reads a data stream of the job, whose first Piece header h
// the session read: each header is followed by exactly Length raw bytes.
// It reads the next piece only after run took the previous one, which is
// what throttles the node. A header that does not fit the job is a
// protocol error (the session ends); a piece that does not arrive whole
// in time ends the job.
func (r *RemoteSwarm) readData(st *yamux.Stream, h pieceHeader) {
	for {
		if h.Job != r.jobID || int64(h.Index) >= int64(r.info.NumPieces()) || int64(h.Length) != r.info.PieceLen(int(h.Index)) {
			r.sess.fail(r.sess.lost(fmt.Errorf("%w: piece header job %d index %d length %d does not fit job %d",
				ErrProtocol, h.Job, h.Index, h.Length, r.jobID)))
			return
		}
		data, err := r.readPiece(st, int(h.Index), int(h.Length))
		if err != nil {
			r.fail(r.lost(err))
			return
		}
		// Verified stays false: the sub-chief re-hashes node pieces.
		ev := swarm.WorkerEvent{Kind: swarm.EventPiece, Piece: int(h.Index), Data: data}
		select {
		case r.pieceIn <- ev:
		case <-r.dead:
			return
		}
		t, body, err := readPieceHeader(st)
		switch {
		case errors.Is(err, io.EOF):
			return // the node closed the stream
		case errors.Is(err, ErrProtocol):
			r.sess.fail(r.sess.lost(err))
			return
		case err != nil:
			r.fail(r.lost(err))
			return
		}
		if err := decodeBody(t, body, &h); err != nil {
			r.sess.fail(r.sess.lost(err))
			return
		}
	}
}
