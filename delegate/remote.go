package delegate

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"

	"flotilla/internal/memlimit"
	"flotilla/metainfo"
	"flotilla/swarm"
	"flotilla/watchdog"
)

// ClientConfig configures the coordinator side of a session. Start from
// DefaultClientConfig.
type ClientConfig struct {
	// Name is the coordinator's name in the hello (for the node's logs).
	Name string
	// CoordinatorKey is the coordinator's identity: nodes obey only a
	// coordinator that signs the session with the key whose public half
	// they were given. Nil: DerivedCoordinatorKey of the cluster key,
	// which every holder of the cluster key can compute (so any swarm
	// node could command the others).
	CoordinatorKey ed25519.PrivateKey
	// HandshakeTimeout bounds connecting, TLS, the hello exchange and the
	// node's answer to the job.
	HandshakeTimeout time.Duration
	// MaxPiecesInFlight bounds the pieces read from the node's data
	// streams and not yet released (swarm.Worker's Release: stored or
	// dropped by the sub-chief), whether still waiting in Events or taken.
	// While it is reached no data stream is read, so the node's sends
	// block (one more piece per data stream may be half read).
	MaxPiecesInFlight int
	// MaxDataStreams is how many data streams the node may open.
	MaxDataStreams int
	// MaxPieceLength is the largest piece length accepted in a job.
	MaxPieceLength int64
	// PieceTimeout and MinPieceRate bound how long a piece may take from
	// its header to its last byte: PieceTimeout plus its length at
	// MinPieceRate (bytes/s). A node slower than that ends its job
	// with ErrTooSlow (its lease returns to the pool): a node trickling
	// bytes would otherwise keep a piece buffer pinned forever. The
	// deadline is a watchdog packet (PieceKind, remote_watch.go).
	PieceTimeout time.Duration
	MinPieceRate int64
	// Watchdog is the clock of piece reads: each is a PieceKind packet
	// owned by "<info-hash hex> <node name>". Whoever reads its Alerts
	// must hand the PieceKind ones to the job's RemoteSwarm.PieceAlert
	// (the coordinator routes them by owner); each job also asks about
	// its reads every second. Nil: every Session starts a private
	// watchdog and reads its alerts itself.
	Watchdog *watchdog.Watchdog
	// StopTimeout is how long Close waits for the Stop message to be
	// written before it drops the connection.
	StopTimeout time.Duration
	// Session tunes yamux.
	Session SessionConfig
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger

	// Protocol versions announced in the hello (tests override them;
	// zero means ProtocolVersion / MinProtocolVersion).
	version, minVersion uint16
}

// DefaultClientConfig returns a ClientConfig with sensible values.
func DefaultClientConfig() ClientConfig {
	return ClientConfig{
		Name:              "coordinator",
		HandshakeTimeout:  10 * time.Second,
		MaxPiecesInFlight: 8,
		MaxDataStreams:    8,
		MaxPieceLength:    64 << 20,
		PieceTimeout:      10 * time.Second,
		MinPieceRate:      64 << 10,
		StopTimeout:       time.Second,
		Session:           DefaultSessionConfig(),
	}
}

// Validate reports the first invalid field.
func (c ClientConfig) Validate() error {
	switch {
	case c.HandshakeTimeout <= 0 || c.StopTimeout <= 0 || c.PieceTimeout <= 0:
		return fmt.Errorf("%w: timeouts must be positive", ErrConfig)
	case c.MinPieceRate <= 0:
		return fmt.Errorf("%w: MinPieceRate must be positive", ErrConfig)
	case c.MaxPiecesInFlight <= 0 || c.MaxDataStreams <= 0:
		return fmt.Errorf("%w: MaxPiecesInFlight and MaxDataStreams must be positive", ErrConfig)
	case c.MaxPieceLength <= 0 || c.MaxPieceLength > math.MaxUint32:
		return fmt.Errorf("%w: MaxPieceLength %d", ErrConfig, c.MaxPieceLength)
	}
	return c.Session.Validate()
}

func (c ClientConfig) hello() helloMsg {
	h := helloMsg{Version: c.version, MinVersion: c.minVersion, Role: RoleCoordinator, Name: c.Name, Caps: []string{CapLeave, CapPeers}}
	if h.Version == 0 {
		h.Version, h.MinVersion = ProtocolVersion, MinProtocolVersion
	}
	return h
}

func logger(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.New(slog.DiscardHandler)
}

// JobSpec describes the download a node is asked to help with.
type JobSpec struct {
	// ID identifies the job in messages; 0 picks a random one.
	ID uint64
	// InfoHash and InfoBytes (the exact bencoded info dictionary) describe
	// the torrent; the node re-parses InfoBytes and checks its SHA-1.
	InfoHash  [20]byte
	InfoBytes []byte
	// Trackers are the announce tiers (BEP 12) the node announces to.
	Trackers [][]string
	// CoordinatorPeerAddr is the coordinator's BitTorrent listen address
	// ("ip:port"), given to the node as a peer; empty for none.
	CoordinatorPeerAddr string
	// Encryption, if set ("prefer", "require" or "off", mse.Policy's
	// String), is the MSE/PE policy of the node's swarm for this job;
	// empty leaves the node's own (ServerConfig.Swarm.Encryption).
	Encryption string
}

// RemoteSwarm is one job on a session with a swarm node (Session.OpenJob,
// or Dial for a session of its own): a swarm.Worker whose work is done by
// the node's own peer swarm.
//
// Its methods queue messages for the session's writer goroutine and never
// block on the network. Events delivers EventPiece (never Verified: the
// sub-chief re-hashes every piece from a node), EventRevoked, and one
// EventFailed when the job ends (the node's worker failed, a piece came
// too slowly, or the session dropped), after which Events is closed.
// Pieces are read from the node only while fewer than MaxPiecesInFlight
// are unreleased (Release), so a slow disk at the sub-chief throttles the
// node.
type RemoteSwarm struct {
	// peersHeard is when the node's last Peers message was taken (owned
	// by the session's control reader; peers.go).
	peersHeard time.Time
	cfg        ClientConfig
	log        *slog.Logger
	sess       *Session
	owner      bool // made by Dial or Client: the session is the job's alone
	name       string
	jobID      uint64
	info       *metainfo.Info
	peerID     [20]byte
	peerAddr   string
	answer     chan error // the node's answer to the Job (buffered)

	events  chan swarm.WorkerEvent
	pieceIn chan swarm.WorkerEvent
	// unreleased counts pieces read from the node and not yet released;
	// released wakes run after a Release.
	unreleased atomic.Int64
	released   chan struct{}
	ctrlIn     chan swarm.WorkerEvent
	leftIn     chan uint64 // the node's Left: how many pieces it shipped in all
	status     atomic.Pointer[swarm.WorkerStatus]
	// pool, if set (UseBuffers), gives piece buffers (remote_streams.go).
	pool atomic.Pointer[swarm.BufferPool]

	mu       sync.Mutex
	answered bool
	failed   bool
	err      error                             // set before dead is closed
	streams  []*yamux.Stream                   // the job's data streams (at most MaxDataStreams)
	reads    map[*yamux.Stream]watchdog.Ticket // piece reads under way (remote_watch.go)
	// memRelease gives back what the job reserved of the process's soft
	// memory limit (internal/memlimit): its pieces in flight, and per data
	// stream a half-read piece and the stream's receive window. memDone:
	// given back (run ended); no more is reserved.
	memRelease []func()
	memDone    bool

	wd       *watchdog.Watchdog // the session's piece clock
	pktOwner string             // owner of the job's packets: "<info-hash hex> <node name>"
	wake     chan struct{}      // PieceAlert: run asks about the reads

	dead      chan struct{}
	closing   chan struct{}
	closeOnce sync.Once
	runDone   chan struct{}
	wg        sync.WaitGroup // data stream readers
}

var _ swarm.Worker = (*RemoteSwarm)(nil)

func newRemoteSwarm(s *Session, id uint64, info *metainfo.Info, infoHash [20]byte) *RemoteSwarm {
	r := &RemoteSwarm{
		cfg: s.cfg, log: s.log.With("job", id), sess: s, name: s.name, jobID: id, info: info,
		reads: map[*yamux.Stream]watchdog.Ticket{}, wd: s.wd, pktOwner: fmt.Sprintf("%x %s", infoHash, s.name),
		wake:     make(chan struct{}, 1),
		answer:   make(chan error, 1),
		events:   make(chan swarm.WorkerEvent),
		pieceIn:  make(chan swarm.WorkerEvent),
		released: make(chan struct{}, 1),
		ctrlIn:   make(chan swarm.WorkerEvent),
		leftIn:   make(chan uint64),
		dead:     make(chan struct{}),
		closing:  make(chan struct{}),
		runDone:  make(chan struct{}),
	}
	r.status.Store(&swarm.WorkerStatus{Name: s.name, Updated: time.Now()})
	return r
}

// Name implements swarm.Worker: the node's name from its hello.
func (r *RemoteSwarm) Name() string { return r.name }

// JobID is the job's identifier on the wire.
func (r *RemoteSwarm) JobID() uint64 { return r.jobID }

// Version is the negotiated protocol version.
func (r *RemoteSwarm) Version() uint16 { return r.sess.version }

// Session is the session the job runs on.
func (r *RemoteSwarm) Session() *Session { return r.sess }

// PeerID and PeerAddr are the node's BitTorrent identity for this job, as
// the node reported it (PeerAddr is empty if the node does not listen).
func (r *RemoteSwarm) PeerID() [20]byte { return r.peerID }

// PeerAddr: see PeerID.
func (r *RemoteSwarm) PeerAddr() string { return r.peerAddr }

// Events implements swarm.Worker.
func (r *RemoteSwarm) Events() <-chan swarm.WorkerEvent { return r.events }

// Release implements swarm.Worker: one piece read from the node is off the
// sub-chief's hands, so one more may be read. It never blocks.
func (r *RemoteSwarm) Release(int) {
	r.unreleased.Add(-1)
	select {
	case r.released <- struct{}{}:
	default:
	}
}

// Status implements swarm.Worker: the node's latest report.
func (r *RemoteSwarm) Status() swarm.WorkerStatus { return *r.status.Load() }

// Err is why the session ended, or nil while it runs.
func (r *RemoteSwarm) Err() error {
	select {
	case <-r.dead:
		return r.err
	default:
		return nil
	}
}

// UseBuffers implements swarm.BufferUser: piece buffers come from pool
// (the sub-chief's Storage), which gets them back once they are stored or
// dropped, instead of each piece allocating (and faulting in) a fresh one.
// At 8 hosts that allocation was half of the coordinator's CPU.
func (r *RemoteSwarm) UseBuffers(pool swarm.BufferPool) {
	if pool != nil {
		r.pool.Store(&pool)
	}
}

var _ swarm.BufferUser = (*RemoteSwarm)(nil)

// Assign implements swarm.Worker.
func (r *RemoteSwarm) Assign(pieces []int) { r.sendPieces(MsgAssign, pieces, false) }

// Revoke implements swarm.Worker; the node answers with EventRevoked.
func (r *RemoteSwarm) Revoke(pieces []int, force bool) { r.sendPieces(MsgRevoke, pieces, force) }

// Have implements swarm.Worker.
func (r *RemoteSwarm) Have(pieces []int) { r.sendPieces(MsgHave, pieces, false) }

// AddPeers implements swarm.Worker.
func (r *RemoteSwarm) AddPeers(addrs []netip.AddrPort) {
	var s []string
	for _, a := range addrs {
		if a.IsValid() {
			s = append(s, a.String())
		}
	}
	for len(s) > 0 {
		n := min(len(s), maxPeersChunk)
		r.send(MsgAddPeers, &addPeersMsg{Job: r.jobID, Addrs: s[:n]})
		s = s[n:]
	}
}

func (r *RemoteSwarm) sendPieces(t MsgType, pieces []int, force bool) {
	idx := toWire(pieces, r.info.NumPieces())
	for len(idx) > 0 {
		n := min(len(idx), maxListChunk)
		if t == MsgRevoke {
			r.send(t, &revokeMsg{Job: r.jobID, Pieces: idx[:n], Force: force})
		} else {
			r.send(t, &piecesMsg{Job: r.jobID, Pieces: idx[:n]})
		}
		idx = idx[n:]
	}
}

func (r *RemoteSwarm) send(t MsgType, v any) {
	select {
	case <-r.dead:
		return
	case <-r.closing:
		return
	default:
	}
	r.sess.push(t, v)
}

// Close implements swarm.Worker: the node hears Cancel (the session and
// its other jobs go on) and Close waits for the job's goroutines. A
// RemoteSwarm from Dial or Client closes its session too, with Stop
// (waiting at most StopTimeout).
func (r *RemoteSwarm) Close() error {
	r.closeOnce.Do(func() {
		close(r.closing)
		if r.owner {
			r.sess.Close()
		}
		r.fail(ErrClosed)
	})
	<-r.runDone
	r.wg.Wait()
	return nil
}

// answerWith records the node's answer to the Job (the first one only).
func (r *RemoteSwarm) answerWith(err error, peerID []byte, peerAddr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.answered {
		return
	}
	r.answered = true
	copy(r.peerID[:], peerID)
	r.peerAddr = peerAddr
	r.answer <- err
}

// fail ends the job once; err says why. The session goes on (the node
// hears Cancel), unless the job owns it.
func (r *RemoteSwarm) fail(err error) {
	r.mu.Lock()
	if r.failed {
		r.mu.Unlock()
		return
	}
	r.failed, r.err = true, err
	close(r.dead)
	streams := r.streams
	for _, st := range streams {
		// Wakes its reader now (Close alone does not stop a read); under
		// mu, so that readPiece cannot set a later deadline after it.
		st.SetReadDeadline(time.Unix(1, 0))
	}
	r.mu.Unlock()
	for _, st := range streams {
		st.Close()
	}
	r.sess.forget(r)
	if r.owner {
		r.sess.fail(err)
	}
	switch {
	case errors.Is(err, ErrNodeLeft):
		r.log.Info("swarm node left the job cleanly", "err", err)
	case !errors.Is(err, ErrClosed):
		r.log.Warn("job on swarm node ended", "err", err)
	}
}

// addStream gives the job a data stream; false if the job ended, over
// if it already has MaxDataStreams. The caller then reads it
// (readData) and calls wg.Done.
func (r *RemoteSwarm) addStream(st *yamux.Stream) (ok, over bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.failed:
		return false, false
	case len(r.streams) >= r.cfg.MaxDataStreams:
		return false, true
	}
	r.streams = append(r.streams, st)
	r.wg.Add(1)
	if !r.memDone {
		r.memRelease = append(r.memRelease, reserveWithRoom(r.info.PieceLength+int64(r.cfg.Session.StreamWindow)))
	}
	return true, false
}

// reserveMemory reserves the job's pieces in flight in the process's soft
// memory limit, until releaseMemory (at the end of run).
func (r *RemoteSwarm) reserveMemory() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.memRelease = append(r.memRelease, reserveWithRoom(int64(r.cfg.MaxPiecesInFlight)*r.info.PieceLength))
}

// reserveWithRoom reserves n bytes a job may hold live, and half as much
// again: the collector needs room above the live heap, or it runs back to
// back once the heap reaches the limit. Reserving the bounds alone, the
// coordinator of 8 hosts sat at its limit (RSS 150 MiB) in a third of the
// runs, when its hashing fell behind and the nodes' pieces in flight
// filled: 13-21 % of its CPU went to the collector, against 1-4 % in the
// others (issue 15).
func reserveWithRoom(n int64) (release func()) { return memlimit.Reserve(n + n/2) }

// releaseMemory gives back every reservation of the job.
func (r *RemoteSwarm) releaseMemory() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.memDone = true
	for _, rel := range r.memRelease {
		rel()
	}
	r.memRelease = nil
}

// revoked passes the node's Revoked on to Events.
func (r *RemoteSwarm) revoked(pieces, kept []uint32) {
	n := r.info.NumPieces()
	ev := swarm.WorkerEvent{Kind: swarm.EventRevoked, Pieces: fromWire(pieces, n), Kept: fromWire(kept, n)}
	select {
	case r.ctrlIn <- ev:
	case <-r.dead:
	}
}

// leaving passes the node's Leaving on to Events (EventLeaving): the
// sub-chief gives the node no more pieces.
func (r *RemoteSwarm) leaving() {
	select {
	case r.ctrlIn <- swarm.WorkerEvent{Kind: swarm.EventLeaving}:
	case <-r.dead:
	}
}

// left hands the node's Left to run, which ends the job once it has read
// the pieces the node shipped.
func (r *RemoteSwarm) left(pieces uint64) {
	select {
	case r.leftIn <- pieces:
	case <-r.dead:
	}
}

func (r *RemoteSwarm) lost(err error) error {
	select {
	case <-r.closing:
		return ErrClosed
	default:
	}
	return r.sess.lost(err)
}
