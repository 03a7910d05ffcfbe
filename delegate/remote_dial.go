package delegate

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"time"

	"github.com/hashicorp/yamux"

	"flotilla/cluster"
	"flotilla/metainfo"
	"flotilla/swarm"
)

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
