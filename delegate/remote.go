package delegate

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"

	"flotilla/metainfo"
	"flotilla/swarm"
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
	// MinPieceRate (bytes/s). A node slower than that ends its session
	// with ErrTooSlow (its lease returns to the pool): a node trickling
	// bytes would otherwise keep a piece buffer pinned forever.
	PieceTimeout time.Duration
	MinPieceRate int64
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
	h := helloMsg{Version: c.version, MinVersion: c.minVersion, Role: RoleCoordinator, Name: c.Name, Caps: []string{}}
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
}

// RemoteSwarm is the coordinator's end of a session with a swarm node: a
// swarm.Worker whose work is done by the node's own peer swarm.
//
// Its methods queue messages for one writer goroutine and never block on
// the network. Events delivers EventPiece (never Verified: the sub-chief
// re-hashes every piece from a node), EventRevoked, and one EventFailed
// when the session drops or the node's worker fails, after which Events is
// closed. Pieces are read from the node only while fewer than
// MaxPiecesInFlight are unreleased (Release), so a slow disk at the
// sub-chief throttles the node.
type RemoteSwarm struct {
	cfg      ClientConfig
	log      *slog.Logger
	name     string
	jobID    uint64
	info     *metainfo.Info
	version  uint16
	peerID   [20]byte
	peerAddr string
	sess     *yamux.Session
	ctrl     *yamux.Stream
	q        *sendQueue

	events  chan swarm.WorkerEvent
	pieceIn chan swarm.WorkerEvent
	// unreleased counts pieces read from the node and not yet released;
	// released wakes run after a Release.
	unreleased atomic.Int64
	released   chan struct{}
	ctrlIn     chan swarm.WorkerEvent
	status     atomic.Pointer[swarm.WorkerStatus]

	failOnce  sync.Once
	err       error // set before dead is closed
	dead      chan struct{}
	closing   chan struct{}
	closeOnce sync.Once
	stopSent  chan struct{}
	runDone   chan struct{}
	wg        sync.WaitGroup
}

var _ swarm.Worker = (*RemoteSwarm)(nil)

// Name implements swarm.Worker: the node's name from its hello.
func (r *RemoteSwarm) Name() string { return r.name }

// JobID is the job's identifier on the wire.
func (r *RemoteSwarm) JobID() uint64 { return r.jobID }

// Version is the negotiated protocol version.
func (r *RemoteSwarm) Version() uint16 { return r.version }

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
	idx := make([]uint32, 0, len(pieces))
	for _, p := range pieces {
		if p >= 0 && p < r.info.NumPieces() {
			idx = append(idx, uint32(p))
		}
	}
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
	f, err := encodeFrame(t, v)
	if err != nil {
		r.log.Error("cannot encode message", "type", t, "err", err)
		return
	}
	r.q.push(f)
}

// Close implements swarm.Worker: it sends Stop (waiting at most
// StopTimeout), drops the session and waits for every goroutine.
func (r *RemoteSwarm) Close() error {
	r.closeOnce.Do(func() {
		close(r.closing)
		t := time.NewTimer(r.cfg.StopTimeout)
		select {
		case <-r.stopSent:
		case <-r.dead:
		case <-t.C:
		}
		t.Stop()
		r.fail(ErrClosed)
	})
	<-r.runDone
	r.wg.Wait()
	return nil
}

// fail ends the session once; err says why.
func (r *RemoteSwarm) fail(err error) {
	r.failOnce.Do(func() {
		r.err = err
		close(r.dead)
		r.sess.Close()
		if !errors.Is(err, ErrClosed) {
			r.log.Warn("session ended", "err", err)
		}
	})
}

func (r *RemoteSwarm) lost(err error) error {
	select {
	case <-r.closing:
		return ErrClosed
	default:
	}
	if errors.Is(err, io.EOF) || errors.Is(err, yamux.ErrSessionShutdown) {
		return fmt.Errorf("%w: %s closed the connection", ErrSessionLost, r.name)
	}
	return fmt.Errorf("%w: %w", ErrSessionLost, err)
}
