package delegate

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/yamux"

	"flotilla/cluster"
	"flotilla/watchdog"
)

// Session is the coordinator's end of one delegate session with a swarm
// node. It carries many jobs at once (protocol version 3): OpenJob hands
// the node a torrent and returns its RemoteSwarm, which is opened and
// closed (Cancel) independently of the others. One coordinator needs one
// Session per node, whatever the number of its downloads.
//
// The session owns the connection, the control stream (a writer
// goroutine draining one send queue for all jobs, a reader dispatching
// the node's messages by job id) and the acceptance of data streams, each
// of which belongs to the job named by its first Piece header. When the
// session drops, every job on it fails with the session's error. Its
// methods are safe for concurrent use.
type Session struct {
	cfg     ClientConfig
	log     *slog.Logger
	name    string
	version uint16
	sess    *yamux.Session
	ctrl    *yamux.Stream
	q       *sendQueue
	wd      *watchdog.Watchdog // piece clock: cfg.Watchdog, or private (remote_watch.go)

	mu      sync.Mutex
	jobs    map[uint64]*RemoteSwarm // opening and open jobs
	recent  []uint64                // ids of the last jobs closed (data streams in flight are not an error)
	streams int                     // data streams accepted and not yet ended
	err     error                   // set before dead is closed

	dead      chan struct{}
	closing   chan struct{}
	closeOnce sync.Once
	stopSent  chan struct{}
	accepting sync.Once // acceptData runs from the first job accepted on
	wg        sync.WaitGroup
}

// recentJobs is how many closed job ids a Session remembers: a data
// stream whose first header names one of them is closed quietly (the node
// may have opened it before it heard Cancel); any other unknown id is a
// protocol error.
const recentJobs = 64

// DialSession connects to a node's delegate address and authenticates
// with key (see Dial for the errors). The session carries no job until
// OpenJob.
func DialSession(ctx context.Context, addr string, key cluster.Key, cfg ClientConfig) (*Session, error) {
	creds, sign, err := prepareSession(key, cfg)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: cfg.HandshakeTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("delegate: dial %s: %w", addr, err)
	}
	s, err := newSession(ctx, conn, cfg, creds, sign)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return s, nil
}

// ClientSession is DialSession over an established connection (a TCP
// connection, or a pipe in tests). On error the caller closes conn.
func ClientSession(ctx context.Context, conn net.Conn, key cluster.Key, cfg ClientConfig) (*Session, error) {
	creds, sign, err := prepareSession(key, cfg)
	if err != nil {
		return nil, err
	}
	return newSession(ctx, conn, cfg, creds, sign)
}

func newSession(ctx context.Context, conn net.Conn, cfg ClientConfig, creds *credentials, sign ed25519.PrivateKey) (*Session, error) {
	log := logger(cfg.Logger).With("delegate", "client", "node", conn.RemoteAddr().String())
	tc, peer, version, err := handshake(ctx, conn, creds, false, cfg.hello(), cfg.HandshakeTimeout, handshakeHooks{sign: sign})
	if err != nil {
		return nil, fmt.Errorf("delegate: session with %s: %w", conn.RemoteAddr(), err)
	}
	sess, err := yamux.Client(batchRecords(tc), cfg.Session.yamux(log))
	if err != nil {
		return nil, fmt.Errorf("delegate: yamux: %w", err)
	}
	ctrl, err := sess.OpenStream()
	if err != nil {
		sess.Close()
		return nil, fmt.Errorf("delegate: session with %s: open control stream: %w", conn.RemoteAddr(), err)
	}
	s := &Session{cfg: cfg, log: log, name: peer.Name, version: version, sess: sess, ctrl: ctrl,
		q: newSendQueue(), jobs: map[uint64]*RemoteSwarm{}, wd: cfg.Watchdog,
		dead: make(chan struct{}), closing: make(chan struct{}), stopSent: make(chan struct{})}
	if s.name == "" {
		s.name = conn.RemoteAddr().String()
	}
	s.log = s.log.With("name", s.name)
	if s.wd == nil {
		if s.wd, err = privateWatchdog(); err != nil {
			sess.Close()
			return nil, err
		}
		s.wg.Add(1)
		go s.routeAlerts()
	}
	s.wg.Add(2)
	go s.writeLoop()
	go s.readControl()
	return s, nil
}

// Name is the node's name from its hello.
func (s *Session) Name() string { return s.name }

// Version is the negotiated protocol version.
func (s *Session) Version() uint16 { return s.version }

// Done is closed when the session has ended (Err then says why).
func (s *Session) Done() <-chan struct{} { return s.dead }

// Err is why the session ended, or nil while it runs.
func (s *Session) Err() error {
	select {
	case <-s.dead:
		return s.err
	default:
		return nil
	}
}

// Jobs is how many jobs the session carries (being opened or open).
func (s *Session) Jobs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.jobs)
}

// OpenJob hands the node a job on this session and returns once the node
// accepted it, or with its refusal: ErrJobRejected, also matching
// ErrNodeBusy when the node runs its maximum of jobs (retry later) or
// ErrNodeDiskFull. A refusal or a timeout leaves the session and its
// other jobs running; a session that ends meanwhile fails with its error.
func (s *Session) OpenJob(ctx context.Context, job JobSpec) (*RemoteSwarm, error) {
	return s.openJob(ctx, job, false)
}

func (s *Session) openJob(ctx context.Context, job JobSpec, owner bool) (*RemoteSwarm, error) {
	info, err := checkJob(&job, s.cfg)
	if err != nil {
		return nil, err
	}
	r := newRemoteSwarm(s, job.ID, info, job.InfoHash)
	r.owner = owner
	if err := s.register(r); err != nil {
		return nil, err
	}
	go r.run() // events keep their order from the node's first message on
	s.push(MsgJob, &jobMsg{Job: job.ID, InfoHash: job.InfoHash[:], Info: job.InfoBytes,
		Trackers: job.Trackers, CoordinatorPeer: job.CoordinatorPeerAddr, Encryption: job.Encryption})
	t := time.NewTimer(s.cfg.HandshakeTimeout)
	defer t.Stop()
	select {
	case err = <-r.answer:
	case <-r.dead:
		select {
		case err = <-r.answer: // accepted, then the job ended: Events says so
		default:
			err = r.err
		}
	case <-ctx.Done():
		err = ctx.Err()
	case <-t.C:
		err = fmt.Errorf("%w: no answer to the job within %v", ErrSessionLost, s.cfg.HandshakeTimeout)
	}
	if err != nil {
		r.Close() // the node hears Cancel, should it have accepted meanwhile
		return nil, fmt.Errorf("delegate: job on %s: %w", s.name, err)
	}
	return r, nil
}

// register adds an opening job to the table.
func (s *Session) register(r *RemoteSwarm) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.err != nil:
		return fmt.Errorf("delegate: job on %s: %w", s.name, s.err)
	case s.isClosing():
		return fmt.Errorf("delegate: job on %s: %w", s.name, ErrClosed)
	case s.jobs[r.jobID] != nil:
		return fmt.Errorf("%w: job id %d already runs on this session", ErrConfig, r.jobID)
	case s.version < 3 && len(s.jobs) > 0:
		// A version 2 node runs one job per session.
		return fmt.Errorf("delegate: job on %s: %w: it speaks protocol version %d, which carries one job per session (upgrade the node)",
			s.name, ErrNodeBusy, s.version)
	}
	s.jobs[r.jobID] = r
	return nil
}

// forget takes a job that ended off the table and, while the session
// runs, tells the node (Cancel: it ends the job and discards its data).
func (s *Session) forget(r *RemoteSwarm) {
	s.mu.Lock()
	if s.jobs[r.jobID] == r {
		delete(s.jobs, r.jobID)
		s.recent = append(s.recent, r.jobID)
		if len(s.recent) > recentJobs {
			s.recent = slices.Delete(s.recent, 0, len(s.recent)-recentJobs)
		}
	}
	alive := s.err == nil
	s.mu.Unlock()
	if alive {
		s.push(MsgCancel, &cancelMsg{Job: r.jobID})
	}
}

// job returns the job with that id, or nil.
func (s *Session) job(id uint64) *RemoteSwarm {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.jobs[id]
}

func (s *Session) push(t MsgType, v any) {
	f, err := encodeFrame(t, v)
	if err != nil {
		s.log.Error("cannot encode message", "type", t, "err", err)
		return
	}
	s.q.push(f)
}

func (s *Session) isClosing() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// Close sends Stop, which ends every job on the node, and waits at most
// StopTimeout for the node to close the connection (closing it first
// could reset it and lose the Stop); then it drops the session, fails
// every job still open with ErrClosed and waits for the session's
// goroutines. The jobs' RemoteSwarms still need their own Close.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		t := time.NewTimer(s.cfg.StopTimeout)
		select {
		case <-s.stopSent: // the Stop is written: wait for the node to hang up
			select {
			case <-s.dead:
			case <-t.C:
			}
		case <-s.dead:
		case <-t.C:
		}
		t.Stop()
		s.fail(ErrClosed)
	})
	s.wg.Wait()
	return nil
}

// fail ends the session once and every job on it with err.
func (s *Session) fail(err error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = err
	close(s.dead)
	jobs := make([]*RemoteSwarm, 0, len(s.jobs))
	for _, r := range s.jobs {
		jobs = append(jobs, r)
	}
	s.mu.Unlock()
	s.sess.Close()
	if !errors.Is(err, ErrClosed) {
		s.log.Warn("session ended", "err", err, "jobs", len(jobs))
	}
	for _, r := range jobs {
		r.fail(err)
	}
}

// lost wraps a session read or write error.
func (s *Session) lost(err error) error {
	if s.isClosing() {
		return ErrClosed
	}
	if errors.Is(err, io.EOF) || errors.Is(err, yamux.ErrSessionShutdown) {
		return fmt.Errorf("%w: %s closed the connection", ErrSessionLost, s.name)
	}
	return fmt.Errorf("%w: %w", ErrSessionLost, err)
}

func (s *Session) writeLoop() {
	defer s.wg.Done()
	var buf []byte
	for {
		stopping := false
		select {
		case <-s.q.wake:
		case <-s.closing:
			stopping = true
		case <-s.dead:
			return
		}
		buf = s.q.take(buf[:0])
		if stopping {
			f, _ := encodeFrame(MsgStop, &stopMsg{Reason: "closed"})
			buf = append(buf, f...)
			s.ctrl.SetWriteDeadline(time.Now().Add(s.cfg.StopTimeout))
		}
		if len(buf) > 0 {
			if _, err := s.ctrl.Write(buf); err != nil {
				s.fail(s.lost(err))
				return
			}
		}
		if stopping {
			close(s.stopSent)
			return
		}
		if cap(buf) > 1<<20 {
			buf = nil
		}
	}
}

// readControl dispatches the node's control messages to their jobs;
// messages for a job no longer open are ignored (they may have been in
// flight when it ended).
func (s *Session) readControl() {
	defer s.wg.Done()
	for {
		t, body, err := readControlFrame(s.ctrl, fromNode)
		if err != nil {
			s.fail(s.lost(err))
			return
		}
		m, err := decodeMessage(t, body)
		if err != nil {
			s.fail(s.lost(err))
			return
		}
		if err := s.dispatch(t, m); err != nil {
			s.fail(s.lost(err))
			return
		}
	}
}

func (s *Session) dispatch(t MsgType, m any) error {
	switch m := m.(type) {
	case *jobAcceptedMsg:
		if r := s.job(m.Job); r != nil {
			r.answerWith(nil, m.PeerID, m.PeerAddr)
			// A node opens data streams only for a job it accepted:
			// none is read before the first one is.
			s.accepting.Do(func() {
				s.wg.Add(1)
				go s.acceptData()
			})
		}
	case *jobRejectedMsg:
		if r := s.job(m.Job); r != nil {
			r.answerWith(fmt.Errorf("%w: %w", ErrJobRejected, remoteErr(m.Reason, m.Code)), nil, "")
		}
	case *statusMsg:
		if r := s.job(m.Job); r != nil {
			st := m.workerStatus(s.name, time.Now())
			r.status.Store(&st)
		}
	case *piecesMsg:
		if t != MsgRevoked {
			return fmt.Errorf("%w: %v from a node", ErrProtocol, t)
		}
		if r := s.job(m.Job); r != nil {
			r.revoked(m.Pieces, m.Kept)
		}
	case *leavingMsg:
		if r := s.job(m.Job); r != nil {
			r.leaving()
		}
	case *leftMsg:
		if r := s.job(m.Job); r != nil {
			r.left(m.Pieces)
		}
	case *addPeersMsg:
		if t != MsgPeers {
			return fmt.Errorf("%w: %v from a node", ErrProtocol, t)
		}
		if r := s.job(m.Job); r != nil {
			r.learned(m, time.Now())
		}
	case *failedMsg:
		if r := s.job(m.Job); r != nil {
			r.fail(fmt.Errorf("%w: %s: %w", ErrRemoteFailed, s.name, remoteErr(m.Err, m.Code)))
		}
	default:
		return fmt.Errorf("%w: %v on the control stream from a node", ErrProtocol, t)
	}
	return nil
}

// acceptData accepts the node's data streams: at most MaxDataStreams per
// job open (and MaxDataStreams while none is), each read by a goroutine
// of its own.
func (s *Session) acceptData() {
	defer s.wg.Done()
	for {
		st, err := s.sess.AcceptStream()
		if err != nil {
			s.fail(s.lost(err))
			return
		}
		s.mu.Lock()
		limit := s.cfg.MaxDataStreams * max(1, len(s.jobs))
		over := s.streams >= limit
		if !over {
			s.streams++
		}
		s.mu.Unlock()
		if over {
			st.Close()
			s.fail(s.lost(fmt.Errorf("%w: more than %d data streams open", ErrProtocol, limit)))
			return
		}
		s.wg.Add(1)
		go s.dataStream(st)
	}
}

// dataStream reads a data stream's first Piece header and hands the
// stream to the job it names.
func (s *Session) dataStream(st *yamux.Stream) {
	defer s.wg.Done()
	defer func() {
		st.Close()
		s.mu.Lock()
		s.streams--
		s.mu.Unlock()
	}()
	t, body, err := readPieceHeader(st)
	if err != nil {
		if errors.Is(err, ErrProtocol) {
			s.fail(s.lost(err))
		}
		return // EOF or reset: the node ended the stream (its job ended)
	}
	var h pieceHeader
	if err := decodeBody(t, body, &h); err != nil {
		s.fail(s.lost(err))
		return
	}
	s.mu.Lock()
	r, recent := s.jobs[h.Job], slices.Contains(s.recent, h.Job)
	s.mu.Unlock()
	if r == nil {
		if !recent {
			s.fail(s.lost(fmt.Errorf("%w: data stream for job %d, which this session never ran", ErrProtocol, h.Job)))
		}
		return
	}
	ok, over := r.addStream(st)
	if over {
		s.fail(s.lost(fmt.Errorf("%w: more than %d data streams for job %d", ErrProtocol, s.cfg.MaxDataStreams, h.Job)))
	}
	if !ok {
		return
	}
	defer r.wg.Done()
	r.readData(st, h)
}
