package delegate

import (
	"context"
	"crypto/sha1"
	"errors"
	"flotilla/peerwire/mse"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"

	"flotilla/metainfo"
	"flotilla/swarm"
	"flotilla/tracker"
)

// nodeSession is the node's end of one session. Its run goroutine reads
// the control stream and owns the session's jobs (at most
// MaxJobsPerSession, each also holding one of the server's MaxJobs); a
// writer goroutine drains the send queue they share.
type nodeSession struct {
	srv     *Server
	log     *slog.Logger
	sess    *yamux.Session
	ctrl    *yamux.Stream
	peer    helloMsg
	version uint16
	q       *sendQueue

	failOnce sync.Once
	dead     chan struct{}
	wg       sync.WaitGroup

	jobs map[uint64]*nodeJob // owned by run
}

func (ns *nodeSession) run() {
	defer ns.sess.Close()
	ctx, cancel := context.WithTimeout(ns.srv.ctx, ns.srv.cfg.HandshakeTimeout)
	ctrl, err := ns.sess.AcceptStreamWithContext(ctx)
	cancel()
	if err != nil {
		ns.log.Warn("no control stream", "err", err)
		return
	}
	ns.ctrl = ctrl
	ns.log.Info("session started", "version", ns.version)
	ns.wg.Add(1)
	go ns.writeLoop()
	err = ns.readLoop()
	if err != nil {
		ns.log.Warn("session ended", "err", err)
		if f := ns.srv.cfg.OnSessionLost; f != nil && !ns.srv.isClosing() {
			f(ns.peer.Name)
		}
		ns.keepJobs() // the coordinator may come back for the pieces (kept.go)
	} else {
		ns.srv.nStops.Add(1)
		ns.log.Info("session stopped by the coordinator")
		// Hang up first: the coordinator waits for it to exit, and
		// wants nothing the jobs could still send (issue 15: stopping
		// 7 nodes' jobs first kept it waiting 0.47 s).
		ns.fail()
	}
	ns.endJobs()
	ns.fail()
	ns.wg.Wait()
}

func (ns *nodeSession) fail() {
	ns.failOnce.Do(func() {
		close(ns.dead)
		ns.sess.Close()
	})
}

func (ns *nodeSession) send(t MsgType, v any) {
	f, err := encodeFrame(t, v)
	if err != nil {
		ns.log.Error("cannot encode message", "type", t, "err", err)
		return
	}
	ns.q.push(f)
}

func (ns *nodeSession) writeLoop() {
	defer ns.wg.Done()
	var buf []byte
	for {
		select {
		case <-ns.q.wake:
		case <-ns.dead:
			return
		}
		buf = ns.q.take(buf[:0])
		if len(buf) == 0 {
			continue
		}
		if _, err := ns.ctrl.Write(buf); err != nil {
			ns.log.Debug("control write failed", "err", err)
			ns.fail()
			return
		}
		if cap(buf) > 1<<20 {
			buf = nil
		}
	}
}

// readLoop handles the coordinator's messages until Stop (nil) or an
// error.
func (ns *nodeSession) readLoop() error {
	for {
		t, body, err := readControlFrame(ns.ctrl, fromCoordinator)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("%w: coordinator closed the control stream", ErrSessionLost)
			}
			return fmt.Errorf("%w: %w", ErrSessionLost, err)
		}
		m, err := decodeMessage(t, body)
		if err != nil {
			return err
		}
		switch m := m.(type) {
		case *jobMsg:
			ns.startJob(m)
		case *piecesMsg:
			j := ns.jobFor(m.Job)
			if j == nil {
				continue
			}
			switch t {
			case MsgAssign:
				j.assign(m.Pieces)
			case MsgHave:
				j.w.Have(j.indices(m.Pieces))
			default:
				return fmt.Errorf("%w: %v from a coordinator", ErrProtocol, t)
			}
		case *revokeMsg:
			if j := ns.jobFor(m.Job); j != nil {
				j.w.Revoke(j.indices(m.Pieces), m.Force)
			}
		case *addPeersMsg:
			if j := ns.jobFor(m.Job); j != nil {
				var addrs []netip.AddrPort
				for _, s := range m.Addrs {
					if a, err := netip.ParseAddrPort(s); err == nil {
						addrs = append(addrs, a)
					}
				}
				if len(addrs) > 0 {
					j.w.AddPeers(addrs)
				}
			}
		case *cancelMsg:
			if j := ns.jobFor(m.Job); j != nil {
				ns.log.Info("job cancelled", "job", m.Job)
				ns.endJob(j)
			}
		case *stopMsg:
			return nil
		default:
			return fmt.Errorf("%w: %v from a coordinator", ErrProtocol, t)
		}
	}
}

// jobFor returns the running job with that id; messages for an ended job
// (in flight when it was cancelled) are ignored.
func (ns *nodeSession) jobFor(id uint64) *nodeJob {
	if j := ns.jobs[id]; j != nil {
		return j
	}
	ns.log.Debug("message for a job not running", "job", id)
	return nil
}

// endJob stops a job and frees its places (MaxJobsPerSession, MaxJobs).
func (ns *nodeSession) endJob(j *nodeJob) {
	j.stop()
	delete(ns.jobs, j.job.ID)
	ns.q.dropStatus(j.job.ID)
}

// endJobs ends every job of the session at once: a lost session's jobs
// each finish their started pieces within the keep grace (kept.go) side
// by side, not one after another.
func (ns *nodeSession) endJobs() {
	var wg sync.WaitGroup
	for _, j := range ns.jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j.stop()
		}()
	}
	wg.Wait()
	for _, j := range ns.jobs {
		ns.endJob(j) // stopped already: frees its places
	}
}

func (ns *nodeSession) startJob(m *jobMsg) {
	code := ""
	reject := func(format string, a ...any) {
		reason := fmt.Sprintf(format, a...)
		if code == codeDiskFull {
			ns.log.Error("job rejected: disk full; free space on this node", "job", m.Job, "reason", reason)
		} else {
			ns.log.Warn("job rejected", "job", m.Job, "reason", reason)
		}
		ns.send(MsgJobRejected, &jobRejectedMsg{Job: m.Job, Reason: reason, Code: code})
	}
	cfg := ns.srv.cfg
	if m.Job == 0 || len(m.InfoHash) != 20 {
		reject("job id 0 or info-hash of %d bytes", len(m.InfoHash))
		return
	}
	if ns.jobs[m.Job] != nil {
		reject("job id %d already runs on this session", m.Job)
		return
	}
	if ns.srv.leaving.Load() {
		code = codeLeaving
		reject("node %s is stopping", cfg.Name)
		return
	}
	if len(ns.jobs) >= cfg.MaxJobsPerSession {
		code = codeJobs
		reject("node %s runs its maximum of %d jobs for this coordinator (MaxJobsPerSession); retry when one ended",
			cfg.Name, cfg.MaxJobsPerSession)
		return
	}
	job, reason := ns.parseJob(m)
	if reason != "" {
		reject("%s", reason)
		return
	}
	if !ns.srv.takeJob() {
		code = codeJobs
		reject("node %s runs its maximum of %d jobs (MaxJobs); retry when one ended", cfg.Name, cfg.MaxJobs)
		return
	}
	w, err := ns.srv.newWorker(job)
	if err != nil {
		ns.srv.doneJob(nil)
		code = failCode(err)
		reject("worker: %v", err)
		return
	}
	j := &nodeJob{ns: ns, job: job, w: w, ship: make(chan swarm.WorkerEvent), quit: make(chan struct{}), leftSent: make(chan struct{})}
	var addr net.Addr
	if a, ok := w.(interface{ Addr() net.Addr }); ok {
		addr = a.Addr()
	}
	acc := jobAcceptedMsg{Job: job.ID, PeerID: job.PeerID[:]}
	if addr != nil {
		acc.PeerAddr = addr.String()
	}
	if job.CoordinatorPeer.IsValid() {
		w.AddPeers([]netip.AddrPort{job.CoordinatorPeer})
	}
	if cfg.OnJob != nil {
		j.onStop = cfg.OnJob(JobInfo{Job: job, PeerAddr: addr, AddPeers: w.AddPeers, Stats: j.stats})
	}
	ns.jobs[job.ID] = j
	ns.srv.addCapped(w)
	ns.srv.addRunning(j)
	ns.srv.nJobs.Add(1)
	ns.srv.nActiveJobs.Add(1)
	ns.send(MsgJobAccepted, &acc)
	ns.log.Info("job started", "job", job.ID, "pieces", job.Info.NumPieces(), "peer_addr", acc.PeerAddr)
	j.start()
}

// parseJob checks a Job's torrent and makes the job from it; reason says
// why it cannot run.
func (ns *nodeSession) parseJob(m *jobMsg) (job Job, reason string) {
	info, err := metainfo.ParseInfo(m.Info)
	if err != nil {
		return job, fmt.Sprintf("info: %v", err)
	}
	if sum := sha1.Sum(m.Info); string(sum[:]) != string(m.InfoHash) {
		return job, "info does not hash to the info-hash"
	}
	if limit := ns.srv.cfg.MaxPieceLength; info.NumPieces() == 0 || info.PieceLength > limit {
		return job, fmt.Sprintf("piece length %d over %d or no pieces", info.PieceLength, limit)
	}
	job = Job{ID: m.Job, Info: info, InfoBytes: m.Info, Trackers: m.Trackers, Coordinator: ns.peer.Name, PeerID: tracker.NewPeerID()}
	copy(job.InfoHash[:], m.InfoHash)
	if m.Encryption != "" {
		p, err := mse.ParsePolicy(m.Encryption)
		if err != nil {
			return job, err.Error()
		}
		job.Encryption = &p
	}
	if m.CoordinatorPeer != "" {
		if a, err := netip.ParseAddrPort(m.CoordinatorPeer); err == nil {
			job.CoordinatorPeer = a
		} else {
			ns.log.Warn("bad coordinator peer address", "addr", m.CoordinatorPeer)
		}
	}
	return job, ""
}

// nodeJob runs one job: a pump goroutine reads the worker's events
// (forwarding Revoked/Failed and reporting Status) and hands pieces to the
// shippers, one per data stream, which write them to the session. A
// shipper blocked by the coordinator's stream window holds its piece; the
// pump then holds the next one and stops reading the worker, so the
// node's memory stays bounded by the worker's own budget plus
// DataStreams+1 pieces.
type nodeJob struct {
	ns     *nodeSession
	job    Job
	w      swarm.Worker
	ship   chan swarm.WorkerEvent
	quit   chan struct{}
	wg     sync.WaitGroup
	onStop func()

	mu      sync.Mutex
	streams []*yamux.Stream

	stopOnce   sync.Once
	shipped    atomic.Int64   // bytes
	nShipped   atomic.Int64   // pieces (Left)
	nDelivered atomic.Int64   // pieces the worker delivered (LeaveStats)
	shipWG     sync.WaitGroup // the shippers (finishLeave waits for them)
	leftSent   chan struct{}  // closed once Left is sent (leave.go)

	leaveMu sync.Mutex
	leaving bool        // Leaving was sent: Assigns are given back (leave.go)
	keep    bool        // the session was lost: keep the pieces (kept.go)
	failed  atomic.Bool // the worker failed (reported): nothing to keep
}

func (j *nodeJob) start() {
	j.wg.Add(1 + j.ns.srv.cfg.DataStreams)
	j.shipWG.Add(j.ns.srv.cfg.DataStreams)
	go j.pump()
	for range j.ns.srv.cfg.DataStreams {
		go j.shipLoop()
	}
}

func (j *nodeJob) stop() {
	j.stopOnce.Do(func() {
		close(j.quit)
		j.mu.Lock()
		for _, st := range j.streams {
			st.Close() // wakes a shipper blocked on the window
		}
		j.mu.Unlock()
		j.closeWorker()
		j.wg.Wait()
		if j.onStop != nil {
			j.onStop()
		}
		j.ns.srv.nActiveJobs.Add(-1)
		j.ns.srv.doneRunning(j)
		j.ns.srv.doneJob(j.w)
		st := j.w.Status() // its last snapshot: what the job cost the node's WAN
		j.ns.log.Info("job ended", "job", j.job.ID, "shipped", j.shipped.Load(), "downloaded", st.Downloaded, "wasted", st.Wasted)
	})
}

func (j *nodeJob) stopped() bool {
	select {
	case <-j.quit:
		return true
	default:
		return false
	}
}

func (j *nodeJob) indices(p []uint32) []int { return fromWire(p, j.job.Info.NumPieces()) }

func (j *nodeJob) stats() (uploaded, downloaded, left int64) {
	st := j.w.Status()
	return st.Uploaded, st.Downloaded, max(0, j.job.Info.Length-j.shipped.Load())
}

// release is the Worker contract's Release for a piece of the node's
// worker, called once it was written to the session (or dropped because
// the job ended): a worker that stops downloading while its pieces are
// unreleased is how a slow coordinator throttles the node's peer swarm.
func (j *nodeJob) release(ev swarm.WorkerEvent) { j.w.Release(ev.Piece) }

func (j *nodeJob) sendStatus() {
	f, err := encodeFrame(MsgStatus, newStatusMsg(j.job.ID, j.w.Status()))
	if err == nil {
		j.ns.q.setStatus(j.job.ID, f)
	}
}

func (j *nodeJob) pump() {
	defer j.wg.Done()
	tick := time.NewTicker(j.ns.srv.cfg.StatusInterval)
	defer tick.Stop()
	events := j.w.Events()
	var pending swarm.WorkerEvent
	hasPending := false
	var peers peerBatch // learned through PEX, for a coordinator that takes them (peers.go)
	forward := takesPeers(j.ns.peer) && !j.job.Info.Private
	j.sendStatus()
	for {
		evCh, shipCh := events, chan swarm.WorkerEvent(nil)
		if hasPending {
			evCh, shipCh = nil, j.ship
		} else if events == nil && j.isLeaving() {
			// The leaving worker delivered its last piece.
			j.finishLeave()
			return
		}
		select {
		case <-j.quit:
			if hasPending {
				j.release(pending)
			}
			return
		case shipCh <- pending:
			hasPending = false
			pending = swarm.WorkerEvent{}
		case <-tick.C:
			j.sendStatus()
			if m, ok := peers.take(j.job.ID, time.Now()); ok {
				j.ns.send(MsgPeers, m)
			}
		case ev, ok := <-evCh:
			if !ok {
				if !j.stopped() && !j.isLeaving() {
					j.ns.send(MsgFailed, &failedMsg{Job: j.job.ID, Err: "worker stopped"})
				}
				events = nil
				continue
			}
			switch ev.Kind {
			case swarm.EventPeers:
				if forward {
					peers.add(ev.Addrs)
				}
			case swarm.EventPiece:
				if ev.Piece < 0 || ev.Piece >= j.job.Info.NumPieces() || int64(len(ev.Data)) != j.job.Info.PieceLen(ev.Piece) {
					j.ns.log.Error("worker delivered a malformed piece; dropped", "piece", ev.Piece, "len", len(ev.Data))
					j.release(ev)
					continue
				}
				pending, hasPending = ev, true
				j.nDelivered.Add(1)
			case swarm.EventRevoked:
				j.sendRevoked(ev.Pieces, ev.Kept)
			case swarm.EventFailed:
				msg := "worker failed"
				if ev.Err != nil {
					msg = ev.Err.Error()
				}
				if errors.Is(ev.Err, ErrNodeDiskFull) {
					j.ns.log.Error("disk full: the job failed and its lease goes back to the coordinator; free space on this node",
						"job", j.job.ID, "err", ev.Err)
				} else {
					j.ns.log.Warn("worker failed", "job", j.job.ID, "err", ev.Err)
				}
				j.failed.Store(true)
				j.ns.send(MsgFailed, &failedMsg{Job: j.job.ID, Err: msg, Code: failCode(ev.Err)})
			}
		}
	}
}

func (j *nodeJob) shipLoop() {
	defer j.wg.Done()
	defer j.shipWG.Done()
	st, err := j.ns.sess.OpenStream()
	if err != nil {
		if !j.stopped() {
			j.ns.log.Warn("cannot open data stream", "err", err)
			j.ns.fail()
		}
		return
	}
	j.mu.Lock()
	if j.stopped() {
		j.mu.Unlock()
		st.Close()
		return
	}
	j.streams = append(j.streams, st)
	j.mu.Unlock()
	defer st.Close()
	for {
		select {
		case <-j.quit:
			return
		case ev, ok := <-j.ship:
			if !ok { // the job left (leave.go): nothing more to ship
				return
			}
			err := j.shipPiece(st, ev)
			j.release(ev)
			if bp, ok := j.w.(swarm.BufferPool); ok && err == nil {
				// Written to the session (yamux wrote it out before
				// Write returned): the buffer is free.
				bp.PutBuffer(ev.Data)
			}
			if err != nil {
				if !j.stopped() {
					j.ns.log.Warn("data stream write failed", "err", err)
					j.ns.fail()
				}
				return
			}
		}
	}
}

func (j *nodeJob) shipPiece(st *yamux.Stream, ev swarm.WorkerEvent) error {
	h, err := encodeFrame(MsgPiece, &pieceHeader{Job: j.job.ID, Index: uint32(ev.Piece), Length: uint32(len(ev.Data))})
	if err != nil {
		return err
	}
	if _, err := st.Write(h); err != nil {
		return err
	}
	if _, err := st.Write(ev.Data); err != nil {
		return err
	}
	j.shipped.Add(int64(len(ev.Data)))
	j.nShipped.Add(1)
	return nil
}
