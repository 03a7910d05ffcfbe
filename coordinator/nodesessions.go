package coordinator

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"sync"

	"flotilla/cluster"
	"flotilla/delegate"
	"flotilla/watchdog"
)

// errSessionsClosed is what a job hears when it asks for a node session
// while the Coordinator closes.
var errSessionsClosed = errors.New("coordinator: closing, no new node sessions")

// nodeSessions holds the Coordinator's delegate sessions, one per swarm
// node (keyed by delegate address), shared by every job: a job's remote
// swarm is a job on its node's session (delegate.Session.OpenJob), so a
// node holds one session per coordinator however many torrents it helps
// with. The table is a cache of live sessions behind a small lock; who
// uses which node, when and how often (back-off, quarantine) stays each
// job's nodeLink's.
//
// A session is dialed as soon as its node joins the cluster (warm), so
// that a node is usable before any job needs it and a new job starts on
// it without a handshake, or by the first job that needs it; jobs asking
// while it is being dialed wait for that dial. A session that ended is
// dialed anew by the next job that asks. Sessions stay open while idle
// (yamux keep-alive pings, delegate.SessionConfig.KeepAliveInterval)
// and are closed when their node leaves the cluster (drop) or the
// Coordinator closes.
type nodeSessions struct {
	key  cluster.Key
	ckey ed25519.PrivateKey // nil: derived from key
	wd   *watchdog.Watchdog // the Coordinator's: the clock of piece reads (delegate.PieceKind)
	log  *slog.Logger

	ctx    context.Context // cancelled by close: aborts dials
	cancel context.CancelFunc
	wg     sync.WaitGroup // dials and closes in flight

	mu     sync.Mutex
	m      map[string]*sessionEntry // by delegate address
	failed map[string]error         // by delegate address: the last dial's error, until one succeeds
	closed bool
}

// sessionEntry is a session being dialed or open.
type sessionEntry struct {
	ready chan struct{} // closed when the dial ended
	s     *delegate.Session
	err   error
}

func newNodeSessions(key cluster.Key, ckey ed25519.PrivateKey, wd *watchdog.Watchdog, log *slog.Logger) *nodeSessions {
	ctx, cancel := context.WithCancel(context.Background())
	return &nodeSessions{key: key, ckey: ckey, wd: wd, log: log, ctx: ctx, cancel: cancel,
		m: map[string]*sessionEntry{}, failed: map[string]error{}}
}

// openJob opens job on the session to the node at addr, dialing the
// session if there is none. Its errors are delegate's (ErrNodeBusy: the
// node runs its maximum of jobs).
func (p *nodeSessions) openJob(ctx context.Context, addr string, job delegate.JobSpec) (*delegate.RemoteSwarm, error) {
	s, err := p.session(ctx, addr)
	if err != nil {
		return nil, err
	}
	return s.OpenJob(ctx, job)
}

// warm starts dialing the session to addr unless it is open or being
// dialed; it does not wait.
func (p *nodeSessions) warm(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.entryLocked(addr)
	}
}

// session returns the live session to addr, waiting for a dial in flight
// or starting one.
func (p *nodeSessions) session(ctx context.Context, addr string) (*delegate.Session, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errSessionsClosed
	}
	e := p.entryLocked(addr)
	p.mu.Unlock()
	select {
	case <-e.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if e.err != nil {
		return nil, e.err
	}
	return e.s, nil
}

// entryLocked returns addr's entry that is open or being dialed, starting
// a dial if there is none. p.mu is held.
func (p *nodeSessions) entryLocked(addr string) *sessionEntry {
	e := p.m[addr]
	if e != nil {
		select {
		case <-e.ready:
			if e.err != nil || e.s.Err() != nil {
				e = nil // failed or ended: dial anew
			}
		default:
		}
	}
	if e == nil {
		e = &sessionEntry{ready: make(chan struct{})}
		p.m[addr] = e
		p.wg.Add(1)
		go p.dial(addr, e)
	}
	return e
}

// dial opens the session of e, bounded by nodeDialTimeout whoever waits.
func (p *nodeSessions) dial(addr string, e *sessionEntry) {
	defer p.wg.Done()
	ctx, cancel := context.WithTimeout(p.ctx, nodeDialTimeout)
	defer cancel()
	ccfg := delegate.DefaultClientConfig()
	ccfg.Logger, ccfg.CoordinatorKey, ccfg.Watchdog = p.log, p.ckey, p.wd
	s, err := delegate.DialSession(ctx, addr, p.key, ccfg)
	p.mu.Lock()
	if err == nil && p.closed {
		s.Close()
		s, err = nil, errSessionsClosed
	}
	e.s, e.err = s, err
	if err != nil && p.m[addr] == e {
		delete(p.m, addr)
	}
	if err != nil && !errors.Is(err, errSessionsClosed) {
		p.failed[addr] = err
	} else {
		delete(p.failed, addr)
	}
	close(e.ready)
	p.mu.Unlock()
	if err == nil {
		p.log.Info("delegate session open", "node", s.Name(), "addr", addr, "version", s.Version())
	}
}

// drop closes the session to addr (its node left the cluster): the node
// hears Stop, and every job still on it fails. It does not wait.
func (p *nodeSessions) drop(addr string) {
	p.mu.Lock()
	delete(p.failed, addr)
	e := p.m[addr]
	var s *delegate.Session
	if e != nil {
		select {
		case <-e.ready:
			s = e.s
			delete(p.m, addr)
		default: // being dialed: the jobs that wait for it decide
		}
	}
	if s != nil {
		p.wg.Add(1)
	}
	p.mu.Unlock()
	if s != nil {
		go func() {
			defer p.wg.Done()
			s.Close()
		}()
	}
}

// close closes every session and waits for them and for dials in
// flight.
func (p *nodeSessions) close() {
	p.mu.Lock()
	p.closed = true
	var open []*delegate.Session
	for addr, e := range p.m {
		select {
		case <-e.ready:
			if e.s != nil {
				open = append(open, e.s)
			}
			delete(p.m, addr)
		default:
		}
	}
	p.mu.Unlock()
	p.cancel()
	for _, s := range open { // side by side: each waits for its node to hang up
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			s.Close()
		}()
	}
	p.wg.Wait()
}

// SessionState is the state of the Coordinator's delegate session to a
// swarm node.
type SessionState struct {
	// State is SessionOpen, SessionDialing or SessionFailed.
	State string
	// Err is the last dial's error (SessionFailed).
	Err error
}

// Session states.
const (
	SessionOpen    = "open"    // handshake done, the node can take jobs now
	SessionDialing = "dialing" // being dialed
	SessionFailed  = "failed"  // the last dial failed (Err); the next job that needs it dials again
)

// states is the state of every session by delegate address; an address
// without a session, a dial or a failure is absent.
func (p *nodeSessions) states() map[string]SessionState {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]SessionState, len(p.m)+len(p.failed))
	for addr, err := range p.failed {
		out[addr] = SessionState{State: SessionFailed, Err: err}
	}
	for addr, e := range p.m {
		select {
		case <-e.ready:
			if e.err == nil {
				if err := e.s.Err(); err != nil {
					out[addr] = SessionState{State: SessionFailed, Err: err}
				} else {
					out[addr] = SessionState{State: SessionOpen}
				}
			}
		default:
			out[addr] = SessionState{State: SessionDialing}
		}
	}
	return out
}

// count is how many sessions are open (tests).
func (p *nodeSessions) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, e := range p.m {
		select {
		case <-e.ready:
			if e.err == nil && e.s.Err() == nil {
				n++
			}
		default:
		}
	}
	return n
}
