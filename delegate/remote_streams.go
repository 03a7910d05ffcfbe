package delegate

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sync/atomic"
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
	var outbox []swarm.WorkerEvent
	dead := r.dead
	failed := false
	for {
		var out chan swarm.WorkerEvent
		var first swarm.WorkerEvent
		if len(outbox) > 0 {
			out, first = r.events, outbox[0]
		}
		var pieceIn, ctrlIn chan swarm.WorkerEvent
		if !failed {
			ctrlIn = r.ctrlIn
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
		case ev := <-pieceIn:
			outbox = append(outbox, ev)
			r.unreleased.Add(1)
		case ev := <-ctrlIn:
			outbox = append(outbox, ev)
		case <-dead:
			dead, failed = nil, true
			outbox = append(outbox, swarm.WorkerEvent{Kind: swarm.EventFailed, Err: r.err})
		}
	}
}

func (r *RemoteSwarm) writeLoop() {
	defer r.wg.Done()
	var buf []byte
	for {
		stopping := false
		select {
		case <-r.q.wake:
		case <-r.closing:
			stopping = true
		case <-r.dead:
			return
		}
		buf = r.q.take(buf[:0])
		if stopping {
			f, _ := encodeFrame(MsgStop, &stopMsg{Reason: "closed"})
			buf = append(buf, f...)
			r.ctrl.SetWriteDeadline(time.Now().Add(r.cfg.StopTimeout))
		}
		if len(buf) > 0 {
			if _, err := r.ctrl.Write(buf); err != nil {
				r.fail(r.lost(err))
				return
			}
		}
		if stopping {
			close(r.stopSent)
			return
		}
		if cap(buf) > 1<<20 {
			buf = nil
		}
	}
}

func (r *RemoteSwarm) readControl() {
	defer r.wg.Done()
	for {
		t, body, err := readControlFrame(r.ctrl, fromNode)
		if err != nil {
			r.fail(r.lost(err))
			return
		}
		m, err := decodeMessage(t, body)
		if err != nil {
			r.fail(r.lost(err))
			return
		}
		switch m := m.(type) {
		case *statusMsg:
			if m.Job != r.jobID {
				continue // a report about a job this session no longer runs
			}
			st := m.workerStatus(r.name, time.Now())
			r.status.Store(&st)
		case *piecesMsg:
			if t != MsgRevoked {
				r.fail(r.lost(fmt.Errorf("%w: %v from a node", ErrProtocol, t)))
				return
			}
			if m.Job != r.jobID {
				continue
			}
			ev := swarm.WorkerEvent{Kind: swarm.EventRevoked, Pieces: make([]int, 0, len(m.Pieces))}
			for _, p := range m.Pieces {
				if int64(p) < int64(r.info.NumPieces()) {
					ev.Pieces = append(ev.Pieces, int(p))
				}
			}
			select {
			case r.ctrlIn <- ev:
			case <-r.dead:
				return
			}
		case *failedMsg:
			if m.Job != r.jobID {
				continue
			}
			r.fail(fmt.Errorf("%w: %s: %w", ErrRemoteFailed, r.name, remoteErr(m.Err, m.Code)))
			return
		default:
			r.fail(r.lost(fmt.Errorf("%w: %v on the control stream from a node", ErrProtocol, t)))
			return
		}
	}
}

// pieceStep is how much of a piece is read (and allocated) at a time: a
// piece's buffer grows with the bytes that arrived, not with the length
// its header declares.
const pieceStep = 256 << 10

// readPiece reads the n bytes of piece index that follow its header,
// within PieceTimeout plus n at MinPieceRate.
func (r *RemoteSwarm) readPiece(st *yamux.Stream, index, n int) ([]byte, error) {
	start := time.Now()
	limit := r.cfg.PieceTimeout + time.Duration(float64(n)/float64(r.cfg.MinPieceRate)*float64(time.Second))
	st.SetReadDeadline(start.Add(limit))
	defer st.SetReadDeadline(time.Time{})
	data := make([]byte, 0, min(n, pieceStep))
	for len(data) < n {
		if len(data) == cap(data) {
			data = slices.Grow(data, min(n-len(data), max(len(data), pieceStep)))
		}
		k, err := st.Read(data[len(data):min(cap(data), n)])
		data = data[:len(data)+k]
		if err == nil {
			continue
		}
		if errors.Is(err, yamux.ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("%w: piece %d: %d of %d bytes after %v (a node must send a piece within %v plus its length at %d KiB/s)",
				ErrTooSlow, index, len(data), n, time.Since(start).Round(time.Millisecond), r.cfg.PieceTimeout, r.cfg.MinPieceRate>>10)
		}
		if errors.Is(err, io.EOF) {
			if len(data) == n {
				break
			}
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return data, nil
}

// rate sanitizes a reported rate (NaN, infinite or negative: 0).
func rate(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) || x < 0 {
		return 0
	}
	return x
}

func (r *RemoteSwarm) acceptData() {
	defer r.wg.Done()
	var open atomic.Int64
	for {
		st, err := r.sess.AcceptStream()
		if err != nil {
			r.fail(r.lost(err))
			return
		}
		if open.Load() >= int64(r.cfg.MaxDataStreams) {
			st.Close()
			r.fail(r.lost(fmt.Errorf("%w: more than %d data streams open", ErrProtocol, r.cfg.MaxDataStreams)))
			return
		}
		open.Add(1)
		r.wg.Add(1)
		go func() {
			defer open.Add(-1)
			r.readData(st)
		}()
	}
}

// readData reads pieces from one data stream: a Piece header frame, then
// exactly Length raw bytes. It reads the next piece only after run took
// the previous one, which is what throttles the node.
func (r *RemoteSwarm) readData(st *yamux.Stream) {
	defer r.wg.Done()
	defer st.Close()
	for {
		t, body, err := readPieceHeader(st)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				r.fail(r.lost(err))
			}
			return
		}
		if t != MsgPiece {
			r.fail(r.lost(fmt.Errorf("%w: %v on a data stream", ErrProtocol, t)))
			return
		}
		var h pieceHeader
		if err := decodeBody(t, body, &h); err != nil {
			r.fail(r.lost(err))
			return
		}
		if h.Job != r.jobID || int64(h.Index) >= int64(r.info.NumPieces()) || int64(h.Length) != r.info.PieceLen(int(h.Index)) {
			r.fail(r.lost(fmt.Errorf("%w: piece header job %d index %d length %d does not fit job %d",
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
	}
}
