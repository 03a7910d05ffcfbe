package delegate

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Leaving cleanly (spec.md, "Leaving cleanly").
//
// A node that is stopped (swarmnode's SIGTERM) calls Server.Leave before
// it leaves the cluster. Every job whose coordinator understands it
// (CapLeave in its hello):
//
//  1. says Leaving: the coordinator's sub-chief gives the node nothing
//     more (an Assign already in flight is answered with Revoked);
//  2. gives back the pieces it has not started (Revoked) and finishes the
//     ones it has, for up to LeaveGrace; what is still unfinished then is
//     given back too;
//  3. ships every finished piece on its data streams and says Left with
//     the number of pieces it wrote to them; the coordinator ends the job
//     once it has read that many (ErrNodeLeft), so nothing the node
//     verified is fetched again elsewhere, and its lease is back in the
//     pool at once.
//
// Leave does not end the sessions: the coordinator stops them when the
// node leaves the cluster (or Close drops them).

// leaver is a worker that can finish its lease and end its events for a
// clean leave (localWorker; the tests' fakes).
type leaver interface {
	// Leave gives back the pieces not started (EventRevoked), finishes
	// the others for up to grace (less if ctx ends), gives back what is
	// still unfinished, and then closes its events once the last piece
	// was sent on them. The worker stays open (Close still follows).
	Leave(ctx context.Context, grace time.Duration)
}

// LeaveStats is what Leave did.
type LeaveStats struct {
	Jobs int // jobs running when Leave was called
	Left int // of them, those that sent Left (the others end as before)
	// Shipped counts the pieces the jobs that left wrote to their data
	// streams in all (Left's figures), OnLeave those of them written
	// since Leave was called (finished or waiting to be shipped then);
	// Unshipped the pieces their workers verified that were not shipped
	// (0 unless ctx ended first).
	Shipped, OnLeave, Unshipped int64
}

// Leave ends the node's jobs cleanly before the node stops: from now on
// new jobs are rejected (code "leaving", ErrNodeLeft), and every running
// job whose coordinator understands it says Leaving, finishes the pieces
// it started (for up to LeaveGrace), ships what it finished and says
// Left. ctx bounds the whole; the jobs that did not leave cleanly end as
// before (their coordinator stops them or the session drops). Any
// goroutine.
func (s *Server) Leave(ctx context.Context) LeaveStats {
	s.leaving.Store(true)
	s.mu.Lock()
	jobs := make([]*nodeJob, 0, len(s.running))
	for j := range s.running {
		jobs = append(jobs, j)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	var mu sync.Mutex
	st := LeaveStats{Jobs: len(jobs)}
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			before := j.nShipped.Load()
			ok := j.leave(ctx, s.cfg.LeaveGrace)
			shipped := j.nShipped.Load()
			mu.Lock()
			defer mu.Unlock()
			if ok {
				st.Left++
				st.Shipped += shipped
				st.OnLeave += shipped - before
				st.Unshipped += j.nDelivered.Load() - shipped
			}
		}()
	}
	wg.Wait()
	if st.Jobs > 0 {
		s.log.Info("left", "jobs", st.Jobs, "cleanly", st.Left, "shipped_pieces", st.Shipped, "on_leave", st.OnLeave, "unshipped", st.Unshipped)
	}
	return st
}

// addRunning and doneRunning keep the set of running jobs Leave walks.
func (s *Server) addRunning(j *nodeJob) {
	s.mu.Lock()
	s.running[j] = struct{}{}
	s.mu.Unlock()
}

func (s *Server) doneRunning(j *nodeJob) {
	s.mu.Lock()
	delete(s.running, j)
	s.mu.Unlock()
}

// leave runs a clean leave of the job (see Server.Leave); it reports
// whether the job sent Left. A job whose coordinator lacks CapLeave, or
// whose worker cannot leave, is left as it is.
func (j *nodeJob) leave(ctx context.Context, grace time.Duration) bool {
	lw, ok := j.w.(leaver)
	if !ok || !slices.Contains(j.ns.peer.Caps, CapLeave) {
		return false
	}
	j.leaveMu.Lock()
	if j.leaving || j.stopped() {
		j.leaveMu.Unlock()
		return false
	}
	j.leaving = true
	j.leaveMu.Unlock()
	j.ns.log.Info("leaving: finishing and shipping the job's pieces", "job", j.job.ID)
	j.ns.send(MsgLeaving, &leavingMsg{Job: j.job.ID})
	lw.Leave(ctx, grace)
	select {
	case <-j.leftSent:
		j.ns.log.Info("left the job", "job", j.job.ID, "shipped_pieces", j.nShipped.Load())
		return true
	case <-ctx.Done():
		j.ns.log.Warn("leave timed out; pieces not yet shipped are lost to the coordinator", "job", j.job.ID)
	case <-j.quit:
	}
	return false
}

// isLeaving reports whether the job is leaving.
func (j *nodeJob) isLeaving() bool {
	j.leaveMu.Lock()
	defer j.leaveMu.Unlock()
	return j.leaving
}

// assign passes an Assign on to the worker, or, once the job is leaving,
// gives the pieces straight back (Revoked): the coordinator may have sent
// it before it heard Leaving.
func (j *nodeJob) assign(pieces []uint32) {
	j.leaveMu.Lock()
	defer j.leaveMu.Unlock()
	if j.leaving {
		j.sendRevoked(j.indices(pieces), nil)
		return
	}
	j.w.Assign(j.indices(pieces))
}

// sendRevoked tells the coordinator which pieces the job gave back and
// which of those asked it keeps (started). An answer with neither is not
// sent: it answers nothing the coordinator could match.
func (j *nodeJob) sendRevoked(pieces, kept []int) {
	n := j.job.Info.NumPieces()
	p, k := toWire(pieces, n), toWire(kept, n)
	for len(p) > 0 || len(k) > 0 { // at most maxListChunk indices a message
		n := min(len(p), maxListChunk)
		m := min(len(k), maxListChunk-n)
		j.ns.send(MsgRevoked, &piecesMsg{Job: j.job.ID, Pieces: p[:n], Kept: k[:m]})
		p, k = p[n:], k[m:]
	}
}

// finishLeave runs on the pump once a leaving job's worker closed its
// events and the last piece went to a shipper: the shippers write what
// they hold and close their streams, and then Left says how many pieces
// the job shipped.
func (j *nodeJob) finishLeave() {
	close(j.ship)
	j.shipWG.Wait()
	if j.stopped() {
		return
	}
	j.ns.send(MsgLeft, &leftMsg{Job: j.job.ID, Pieces: uint64(j.nShipped.Load())})
	close(j.leftSent)
}

// Leave implements leaver for the node's local swarm.
func (w *localWorker) Leave(ctx context.Context, grace time.Duration) {
	all := allPieceIndices(w.store.info.NumPieces())
	w.ls.Revoke(all, false) // unstarted pieces back at once; started ones are finished
	w.waitSettled(ctx, grace)
	if w.inFlight() > 0 {
		w.log.Info("leaving: giving back pieces not finished in time", "pieces", w.inFlight(), "grace", grace)
		w.ls.Revoke(all, true)
		w.waitSettled(ctx, time.Second) // the revocation's event, before the swarm closes
	}
	// The swarm's events end once its last one was taken: the pump
	// forwards what it holds and closes Events.
	w.ls.Close()
}

// waitSettled waits until every leased piece was delivered or given back,
// at most d (less if ctx ends).
func (w *localWorker) waitSettled(ctx context.Context, d time.Duration) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for w.inFlight() > 0 {
		select {
		case <-t.C:
		case <-deadline.C:
			return
		case <-ctx.Done():
			return
		}
	}
}
