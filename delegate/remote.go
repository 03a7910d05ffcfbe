package delegate

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"

	"flotilla/cluster"
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

// Dial connects to a node's delegate address, authenticates with key,
// hands it the job and returns once the node accepted it. Errors wrap
// ErrAuth (wrong key), ErrVersion, ErrJobRejected, ErrProtocol or the
// network error.
func Dial(ctx context.Context, addr string, key cluster.Key, job JobSpec, cfg ClientConfig) (*RemoteSwarm, error) {
	p, err := prepare(key, job, cfg)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: cfg.HandshakeTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("delegate: dial %s: %w", addr, err)
	}
	r, err := p.client(ctx, conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return r, nil
}

// prepared is a checked job with the credentials to run it.
type prepared struct {
	cfg   ClientConfig
	job   JobSpec
	info  *metainfo.Info
	creds *credentials
	sign  ed25519.PrivateKey
}

// prepare checks everything that needs no network.
func prepare(key cluster.Key, job JobSpec, cfg ClientConfig) (*prepared, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	info, err := metainfo.ParseInfo(job.InfoBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: job info: %w", ErrConfig, err)
	}
	if sha1.Sum(job.InfoBytes) != job.InfoHash {
		return nil, fmt.Errorf("%w: job info does not hash to its info-hash", ErrConfig)
	}
	if info.PieceLength > cfg.MaxPieceLength || info.NumPieces() == 0 || info.NumPieces() > math.MaxUint32 {
		return nil, fmt.Errorf("%w: job piece length %d or count %d out of range", ErrConfig, info.PieceLength, info.NumPieces())
	}
	if job.ID == 0 {
		job.ID = randomJobID()
	}
	creds, err := deriveCredentials(key)
	if err != nil {
		return nil, err
	}
	sign := cfg.CoordinatorKey
	if sign == nil {
		sign = DerivedCoordinatorKey(key)
	} else if len(sign) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: CoordinatorKey of %d bytes", ErrConfig, len(sign))
	}
	return &prepared{cfg: cfg, job: job, info: info, creds: creds, sign: sign}, nil
}

// Client is Dial over an established connection (a TCP connection, or a
// pipe in tests). On error the caller closes conn.
func Client(ctx context.Context, conn net.Conn, key cluster.Key, job JobSpec, cfg ClientConfig) (*RemoteSwarm, error) {
	p, err := prepare(key, job, cfg)
	if err != nil {
		return nil, err
	}
	return p.client(ctx, conn)
}

func (p *prepared) client(ctx context.Context, conn net.Conn) (*RemoteSwarm, error) {
	cfg, job, info, creds := p.cfg, p.job, p.info, p.creds
	log := logger(cfg.Logger).With("delegate", "client", "node", conn.RemoteAddr().String())
	tc, peer, version, err := handshake(ctx, conn, creds, false, cfg.hello(), cfg.HandshakeTimeout, handshakeHooks{sign: p.sign})
	if err != nil {
		return nil, fmt.Errorf("delegate: session with %s: %w", conn.RemoteAddr(), err)
	}
	sess, err := yamux.Client(tc, cfg.Session.yamux(log))
	if err != nil {
		return nil, fmt.Errorf("delegate: yamux: %w", err)
	}
	r := &RemoteSwarm{
		cfg: cfg, log: log, name: peer.Name, jobID: job.ID, info: info, version: version, sess: sess,
		q:        newSendQueue(),
		events:   make(chan swarm.WorkerEvent),
		pieceIn:  make(chan swarm.WorkerEvent),
		released: make(chan struct{}, 1),
		ctrlIn:   make(chan swarm.WorkerEvent),
		dead:     make(chan struct{}),
		closing:  make(chan struct{}),
		stopSent: make(chan struct{}),
		runDone:  make(chan struct{}),
	}
	if r.name == "" {
		r.name = conn.RemoteAddr().String()
	}
	r.log = r.log.With("name", r.name, "job", job.ID)
	if err := r.startJob(ctx, job); err != nil {
		sess.Close()
		return nil, fmt.Errorf("delegate: session with %s: %w", r.name, err)
	}
	r.status.Store(&swarm.WorkerStatus{Name: r.name, Updated: time.Now()})
	r.wg.Add(3)
	go r.writeLoop()
	go r.readControl()
	go r.acceptData()
	go r.run()
	return r, nil
}

func randomJobID() uint64 {
	var b [8]byte
	rand.Read(b[:])
	if id := binary.BigEndian.Uint64(b[:]); id != 0 {
		return id
	}
	return 1
}

// startJob opens the control stream, sends the job and waits for the
// node's answer.
func (r *RemoteSwarm) startJob(ctx context.Context, job JobSpec) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.HandshakeTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { r.sess.Close() })
	defer stop()
	ctrl, err := r.sess.OpenStream()
	if err != nil {
		return ioErr(ctx, "open control stream", err)
	}
	r.ctrl = ctrl
	f, err := encodeFrame(MsgJob, &jobMsg{Job: job.ID, InfoHash: job.InfoHash[:], Info: job.InfoBytes,
		Trackers: job.Trackers, CoordinatorPeer: job.CoordinatorPeerAddr})
	if err != nil {
		return err
	}
	if _, err := ctrl.Write(f); err != nil {
		return ioErr(ctx, "send job", err)
	}
	t, body, err := readControlFrame(ctrl, fromNode)
	if err != nil {
		return ioErr(ctx, "read job answer", err)
	}
	switch t {
	case MsgJobAccepted:
		var m jobAcceptedMsg
		if err := decodeBody(t, body, &m); err != nil {
			return err
		}
		if m.Job != job.ID {
			return fmt.Errorf("%w: accepted job %d, sent %d", ErrProtocol, m.Job, job.ID)
		}
		copy(r.peerID[:], m.PeerID)
		r.peerAddr = m.PeerAddr
		return nil
	case MsgJobRejected:
		var m jobRejectedMsg
		if err := decodeBody(t, body, &m); err != nil {
			return err
		}
		return fmt.Errorf("%w: %w", ErrJobRejected, remoteErr(m.Reason, m.Code))
	}
	return fmt.Errorf("%w: %v in answer to Job", ErrProtocol, t)
}

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
