package delegate

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flotilla/peerwire/mse"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"

	"flotilla/cluster"
	"flotilla/metainfo"
	"flotilla/swarm"
)

// ServerConfig configures a swarm node's delegate server. Start from
// DefaultServerConfig.
type ServerConfig struct {
	// Key is the cluster key; sessions from peers without it fail the TLS
	// handshake.
	Key cluster.Key
	// Name is the node's name in the hello (the coordinator's worker name).
	Name string
	// CoordinatorPubKey is the public half of the only coordinator key
	// the node obeys (see ClientConfig.CoordinatorKey). Nil: the key
	// derived from the cluster key, which every holder of the cluster key
	// can compute; NewServer logs a warning.
	CoordinatorPubKey ed25519.PublicKey
	// Listener, if set, is where Serve accepts connections (the server
	// closes it); otherwise ListenAddr is listened on, if non-empty.
	// Without either, only ServeConn feeds the server.
	Listener   net.Listener
	ListenAddr string
	// DataDir holds the pieces a job downloaded, so that the node can
	// upload them to its peers; a job's file is removed when it ends.
	// Required unless NewWorker is set. The server locks it while it
	// runs (a second server on it fails with ErrDataDirInUse) and at its
	// start removes the job and temporary files an earlier run left
	// behind (nodedisk.go).
	DataDir string
	// PeerListen is the BitTorrent listen address of the node's swarm
	// ("ip:port"). A job runs when it is busy listens on the same IP and a
	// free port. Empty: the node's swarm only dials out.
	PeerListen string
	// Swarm is the template of every job's swarm.Config; Info, InfoHash,
	// PeerID, Storage, Listener, ListenAddr and Logger are set per job.
	Swarm swarm.Config
	// NewWorker, if set, makes a job's worker instead of the default
	// local peer swarm (tests use fakes). It must not block for long.
	NewWorker func(Job) (swarm.Worker, error)
	// OnJob, if set, is called when a job starts (for example to announce
	// the node to the job's trackers); the function it returns, if not
	// nil, is called when the job ends. Neither may block for long.
	OnJob func(JobInfo) (stop func())
	// OnSessionLost, if set, is called when a session ends other than by
	// the coordinator's Stop or the server's Close: the coordinator died,
	// restarted or became unreachable. The node may then make itself
	// known again (cluster.Refresh), so that a restarted coordinator finds
	// it, and its kept pieces, at once. It gets the coordinator's name and
	// must not block.
	OnSessionLost func(coordinator string)
	// StatusInterval is how often a job's Status is reported.
	StatusInterval time.Duration
	// HandshakeTimeout bounds TLS, hello and the control stream's opening.
	HandshakeTimeout time.Duration
	// MaxSessions bounds authenticated sessions at once; a coordinator
	// over it is told so in the node's hello (ErrRefused).
	MaxSessions int
	// MaxJobs bounds the jobs the node runs at once, over all sessions;
	// MaxJobsPerSession those of one session (one coordinator), so that
	// one coordinator cannot take every place. A Job over either is
	// rejected with code "jobs" (the coordinator's ErrNodeBusy: retry
	// later); the session goes on.
	//
	// The node's peer connections (Swarm.MaxPeers) are shared among the
	// jobs running: each job's swarm gets Swarm.MaxPeers divided by the
	// jobs running now (at least 1), re-divided when a job starts or ends
	// (peerbudget.go). One job has them all.
	MaxJobs, MaxJobsPerSession int
	// MaxHandshakes bounds connections that have not finished the
	// handshake, apart from MaxSessions, so that strangers without the
	// key cannot take the sessions' slots. When it is reached a new
	// connection evicts the oldest pending one.
	MaxHandshakes int
	// MaxHandshakesPerIP bounds pending handshakes from one source
	// address (an IPv6 /64 counts as one); over it a new connection
	// evicts that address's oldest.
	MaxHandshakesPerIP int
	// LeaveGrace bounds how long a job finishes the pieces it started
	// when the node leaves cleanly (Leave); what is unfinished then is
	// given back to the coordinator.
	LeaveGrace time.Duration
	// DataStreams is how many data streams a job opens (pieces are
	// shipped on them in parallel).
	DataStreams int
	// MaxPieceLength is the largest piece length a job may have.
	MaxPieceLength int64
	// Session tunes yamux.
	Session SessionConfig
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger

	version, minVersion uint16 // hello versions (tests)
}

// DefaultServerConfig returns a ServerConfig with sensible values; the
// caller sets Key, Name, DataDir and the addresses.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		Swarm:              swarm.DefaultConfig(),
		StatusInterval:     500 * time.Millisecond,
		HandshakeTimeout:   5 * time.Second,
		MaxSessions:        16,
		MaxJobs:            8,
		MaxJobsPerSession:  8,
		MaxHandshakes:      16,
		MaxHandshakesPerIP: 4,
		DataStreams:        2,
		LeaveGrace:         5 * time.Second,
		MaxPieceLength:     64 << 20,
		Session:            DefaultSessionConfig(),
	}
}

// Validate reports the first invalid field.
func (c ServerConfig) Validate() error {
	switch {
	case c.Key == cluster.Key{}:
		return fmt.Errorf("%w: no cluster key", ErrConfig)
	case c.NewWorker == nil && c.DataDir == "":
		return fmt.Errorf("%w: DataDir is required for the default worker", ErrConfig)
	case c.StatusInterval <= 0 || c.HandshakeTimeout <= 0 || c.LeaveGrace <= 0:
		return fmt.Errorf("%w: intervals must be positive", ErrConfig)
	case c.MaxSessions <= 0 || c.DataStreams <= 0 || c.DataStreams > 8:
		return fmt.Errorf("%w: MaxSessions must be positive, DataStreams in 1..8", ErrConfig)
	case c.MaxJobs <= 0 || c.MaxJobsPerSession <= 0:
		return fmt.Errorf("%w: MaxJobs and MaxJobsPerSession must be positive", ErrConfig)
	case c.MaxHandshakes <= 0 || c.MaxHandshakesPerIP <= 0:
		return fmt.Errorf("%w: MaxHandshakes and MaxHandshakesPerIP must be positive", ErrConfig)
	case c.MaxPieceLength <= 0 || c.MaxPieceLength > math.MaxUint32:
		return fmt.Errorf("%w: MaxPieceLength %d", ErrConfig, c.MaxPieceLength)
	}
	return c.Session.Validate()
}

func (c ServerConfig) hello() helloMsg {
	h := helloMsg{Version: c.version, MinVersion: c.minVersion, Role: RoleNode, Name: c.Name, Caps: []string{}}
	if h.Version == 0 {
		h.Version, h.MinVersion = ProtocolVersion, MinProtocolVersion
	}
	return h
}

// Job is a download a coordinator asked the node to help with.
type Job struct {
	ID        uint64
	InfoHash  [20]byte
	Info      *metainfo.Info
	InfoBytes []byte
	Trackers  [][]string
	// CoordinatorPeer is the coordinator's BitTorrent address (invalid if
	// it gave none); the worker already has it as a peer.
	CoordinatorPeer netip.AddrPort
	// Coordinator is the coordinator's name from its hello.
	Coordinator string
	// PeerID is the node's BitTorrent peer id for this job.
	PeerID [20]byte
	// Encryption is the coordinator's MSE/PE policy for the job's swarm;
	// nil if it gave none (the node's own applies).
	Encryption *mse.Policy
}

// JobInfo is what OnJob gets: the job, and hooks into its worker.
type JobInfo struct {
	Job
	// PeerAddr is the worker's BitTorrent listen address, nil if none.
	PeerAddr net.Addr
	// AddPeers gives the worker peers (from the node's own announces).
	AddPeers func([]netip.AddrPort)
	// Stats reports bytes for tracker announces; left counts the bytes
	// not yet shipped to the coordinator.
	Stats func() (uploaded, downloaded, left int64)
}

// ServerStats counts connections and jobs since the server started.
type ServerStats struct {
	Conns             int64 // connections accepted
	Refused           int64 // authenticated coordinators refused because MaxSessions was reached
	Evicted           int64 // pending handshakes closed to make room (MaxHandshakes, MaxHandshakesPerIP)
	AuthFailures      int64 // TLS handshakes failed (no cluster key), or the peer is not the coordinator
	HandshakeFailures int64 // other handshake failures (version, hello, timeout)
	Sessions          int64 // sessions established
	ActiveSessions    int64
	Stops             int64 // sessions ended by the coordinator's Stop
	Jobs              int64 // jobs accepted
	Busy              int64 // jobs rejected because MaxJobs was reached
	ActiveJobs        int64
}

// Server is a swarm node's delegate endpoint: it accepts sessions from
// coordinators, runs their jobs (many per session, MaxJobs in all) and
// streams each job's verified pieces back.
type Server struct {
	cfg   ServerConfig
	log   *slog.Logger
	creds *credentials
	ln    net.Listener

	coordPub     ed25519.PublicKey // the coordinator key obeyed
	coordDerived bool              // coordPub is derived from the cluster key
	ctx          context.Context
	cancel       context.CancelFunc

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	pending  map[net.Conn]pendingConn // connections still in the handshake
	perIP    map[string]int           // pending handshakes per source address
	sessions int                      // admitted sessions (MaxSessions)
	jobs     int                      // jobs running (MaxJobs)
	capped   map[peerCapped]struct{}  // running swarms sharing MaxPeers (peerbudget.go)
	running  map[*nodeJob]struct{}    // running jobs (Leave)
	leaving  atomic.Bool              // Leave was called: new jobs are rejected
	seq      uint64

	closing   chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	authLog everyMinute
	keep    keepers  // torrents whose lost sessions are keeping pieces (kept.go)
	dataDir *os.File // DataDir, locked while the server runs (nodedisk.go); nil with NewWorker
	// removals are the ended jobs' files being removed (nodeStore.Close),
	// which Close waits for.
	removals sync.WaitGroup

	nConns, nRefused, nEvicted, nAuth, nHandshake, nSessions, nActive, nStops, nJobs, nActiveJobs, nBusy atomic.Int64
}

// everyMinute allows one event a minute (rate-limits log lines a
// stranger can cause).
type everyMinute struct{ last atomic.Int64 }

func (e *everyMinute) Allow() bool {
	now := time.Now().UnixNano()
	last := e.last.Load()
	return (last == 0 || now-last >= int64(time.Minute)) && e.last.CompareAndSwap(last, now)
}

// pendingConn is a connection in the handshake.
type pendingConn struct {
	ip  string
	seq uint64 // order of arrival: the smallest is the oldest
}

// sourceIP is the key of a connection's source for MaxHandshakesPerIP:
// its IPv4 address, or its IPv6 /64.
func sourceIP(a net.Addr) string {
	if a == nil {
		return ""
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		ip := ap.Addr().Unmap()
		if ip.Is6() {
			// One IPv6 host commonly has a whole /64.
			p, _ := ip.Prefix(64)
			return p.String()
		}
		return ip.String()
	}
	return a.String()
}

// NewServer validates cfg and prepares the server; with ListenAddr set it
// listens at once (see Addr).
func NewServer(cfg ServerConfig) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	creds, err := deriveCredentials(cfg.Key)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: logger(cfg.Logger).With("delegate", "server"), creds: creds, ln: cfg.Listener,
		coordPub: cfg.CoordinatorPubKey,
		conns:    map[net.Conn]struct{}{}, pending: map[net.Conn]pendingConn{}, perIP: map[string]int{},
		capped: map[peerCapped]struct{}{}, running: map[*nodeJob]struct{}{},
		closing: make(chan struct{})}
	if s.coordPub == nil {
		s.coordPub, s.coordDerived = DerivedCoordinatorKey(cfg.Key).Public().(ed25519.PublicKey), true
		s.log.Warn("no coordinator public key given: any holder of the cluster key can command this node " +
			"(create a coordinator key with `coord keygen --coordinator FILE` and give nodes its public half)")
	}
	if cfg.NewWorker == nil {
		// The default worker's files live there (nodedisk.go).
		if s.dataDir, err = openDataDir(cfg.DataDir, s.log); err != nil {
			return nil, err
		}
	}
	if s.ln == nil && cfg.ListenAddr != "" {
		if s.ln, err = net.Listen("tcp", cfg.ListenAddr); err != nil {
			if s.dataDir != nil {
				s.dataDir.Close()
			}
			return nil, fmt.Errorf("delegate: listen: %w", err)
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Addr is the listening address, or nil.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Stats returns the counters.
func (s *Server) Stats() ServerStats {
	return ServerStats{Conns: s.nConns.Load(), Refused: s.nRefused.Load(), Evicted: s.nEvicted.Load(), AuthFailures: s.nAuth.Load(),
		HandshakeFailures: s.nHandshake.Load(), Sessions: s.nSessions.Load(), ActiveSessions: s.nActive.Load(),
		Stops: s.nStops.Load(),
		Jobs:  s.nJobs.Load(), ActiveJobs: s.nActiveJobs.Load(), Busy: s.nBusy.Load()}
}

// Serve accepts connections until Close; it then returns ErrClosed.
func (s *Server) Serve() error {
	if s.ln == nil {
		return fmt.Errorf("%w: no listener", ErrConfig)
	}
	backoff := 5 * time.Millisecond
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.closing:
				return ErrClosed
			default:
			}
			if !errors.Is(err, net.ErrClosed) { // EMFILE and friends: back off, retry
				t := time.NewTimer(backoff)
				select {
				case <-t.C:
				case <-s.closing:
					t.Stop()
					return ErrClosed
				}
				backoff = min(2*backoff, time.Second)
				continue
			}
			return fmt.Errorf("delegate: accept: %w", err)
		}
		backoff = 5 * time.Millisecond
		s.ServeConn(c)
	}
}

// ServeConn runs a session on an accepted connection (TCP, or a pipe in
// tests) in the background. The server owns conn from now on.
func (s *Server) ServeConn(c net.Conn) {
	s.mu.Lock()
	select {
	case <-s.closing:
		s.mu.Unlock()
		c.Close()
		return
	default:
	}
	s.nConns.Add(1)
	ip := sourceIP(c.RemoteAddr())
	// Make room: the oldest pending handshake of this address, or of
	// all, gives way. An honest coordinator finishes its handshake in a
	// few round trips; a stranger holding a slot open is the one evicted.
	if s.perIP[ip] >= s.cfg.MaxHandshakesPerIP {
		s.evictOldest(ip)
	}
	if len(s.pending) >= s.cfg.MaxHandshakes {
		s.evictOldest("")
	}
	s.seq++
	s.pending[c] = pendingConn{ip: ip, seq: s.seq}
	s.perIP[ip]++
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go s.handle(c)
}

// evictOldest closes the oldest pending handshake (from ip if it is not
// empty). s.mu is held.
func (s *Server) evictOldest(ip string) {
	var oldest net.Conn
	var best uint64
	for c, p := range s.pending {
		if (ip == "" || p.ip == ip) && (oldest == nil || p.seq < best) {
			oldest, best = c, p.seq
		}
	}
	if oldest == nil {
		return
	}
	s.donePending(oldest)
	s.nEvicted.Add(1)
	s.log.Debug("too many pending handshakes; evicting the oldest", "remote", oldest.RemoteAddr())
	oldest.Close()
}

// donePending forgets a pending handshake. s.mu is held.
func (s *Server) donePending(c net.Conn) {
	p, ok := s.pending[c]
	if !ok {
		return
	}
	delete(s.pending, c)
	if s.perIP[p.ip]--; s.perIP[p.ip] <= 0 {
		delete(s.perIP, p.ip)
	}
}

// takeJob takes one of the MaxJobs places for a job; false if none is
// free.
func (s *Server) takeJob() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jobs >= s.cfg.MaxJobs {
		s.nBusy.Add(1)
		return false
	}
	s.jobs++
	s.reshare() // the new job's swarm starts with the new share (newWorker)
	return true
}

// doneJob frees a job's place; w, its worker if it was started, leaves
// the peer budget, and the others get its share.
func (s *Server) doneJob(w swarm.Worker) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := w.(peerCapped); ok {
		delete(s.capped, c)
	}
	s.jobs--
	s.reshare()
}

// admit takes a session slot for an authenticated coordinator.
func (s *Server) admit() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions >= s.cfg.MaxSessions {
		s.nRefused.Add(1)
		return fmt.Errorf("%w: too many sessions (%d at once, MaxSessions)", ErrRefused, s.cfg.MaxSessions)
	}
	s.sessions++
	return nil
}

func (s *Server) handle(c net.Conn) {
	defer s.wg.Done()
	admitted := false
	defer func() {
		s.mu.Lock()
		s.donePending(c)
		delete(s.conns, c)
		if admitted {
			s.sessions--
		}
		s.mu.Unlock()
		c.Close()
	}()
	log := s.log.With("remote", c.RemoteAddr().String())
	check := func(peer helloMsg, binding []byte) error {
		if err := verifyBinding(s.coordPub, s.coordDerived, peer, binding); err != nil {
			return err
		}
		err := s.admit()
		admitted = err == nil
		return err
	}
	tc, peer, version, err := handshake(s.ctx, c, s.creds, true, s.cfg.hello(), s.cfg.HandshakeTimeout, handshakeHooks{check: check})
	s.mu.Lock()
	_, stillPending := s.pending[c]
	s.donePending(c)
	s.mu.Unlock()
	if err != nil {
		switch {
		case !stillPending:
			// Evicted (counted there) or the server is closing.
		case errors.Is(err, ErrNotCoordinator):
			s.nAuth.Add(1)
			log.Warn("refused a cluster member that is not the coordinator", "err", err)
		case errors.Is(err, ErrAuth):
			// Strangers may knock often: one warning a minute at most.
			if n := s.nAuth.Add(1); s.authLog.Allow() {
				log.Warn("delegate handshake failed (no cluster key)", "err", err, "auth_failures", n)
			}
		case errors.Is(err, ErrRefused):
			log.Warn("refused an authenticated coordinator", "err", err)
		default:
			s.nHandshake.Add(1)
			log.Warn("delegate handshake failed", "err", err)
		}
		return
	}
	sess, err := yamux.Server(batchRecords(tc), s.cfg.Session.yamux(log))
	if err != nil {
		log.Error("yamux", "err", err)
		return
	}
	s.nSessions.Add(1)
	s.nActive.Add(1)
	defer s.nActive.Add(-1)
	ns := &nodeSession{srv: s, log: log.With("coordinator", peer.Name), sess: sess, peer: peer, version: version,
		q: newSendQueue(), dead: make(chan struct{}), jobs: map[uint64]*nodeJob{}}
	ns.run()
}

// isClosing reports whether Close has begun.
func (s *Server) isClosing() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// Close stops accepting, ends every session (and its job) and waits.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		close(s.closing)
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.cancel()
		if s.ln != nil {
			s.ln.Close()
		}
	})
	s.wg.Wait()
	s.removals.Wait()
	s.mu.Lock()
	if s.dataDir != nil {
		s.dataDir.Close() // unlocks it
		s.dataDir = nil
	}
	s.mu.Unlock()
	return nil
}

// newWorker makes a job's worker (NewWorker or the default local swarm).
func (s *Server) newWorker(job Job) (swarm.Worker, error) {
	if s.cfg.NewWorker != nil {
		return s.cfg.NewWorker(job)
	}
	cfg := s.cfg
	s.mu.Lock()
	cfg.Swarm.MaxPeers = s.peerShare()
	s.mu.Unlock()
	return newLocalWorker(cfg, job, s.log.With("job", job.ID), &s.keep, &s.removals)
}
