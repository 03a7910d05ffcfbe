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

	"flotilla/cluster"
	"flotilla/metainfo"
)

// Dial connects to a node's delegate address, authenticates with key,
// hands it the job and returns once the node accepted it: a session of
// the job's own, closed with it. (A coordinator running many jobs opens
// one Session per node and its jobs with OpenJob.) Errors wrap ErrAuth
// (wrong key), ErrVersion, ErrJobRejected, ErrProtocol or the network
// error.
func Dial(ctx context.Context, addr string, key cluster.Key, job JobSpec, cfg ClientConfig) (*RemoteSwarm, error) {
	if _, err := checkJob(&job, cfg); err != nil {
		return nil, err
	}
	s, err := DialSession(ctx, addr, key, cfg)
	if err != nil {
		return nil, err
	}
	return s.openOwned(ctx, job)
}

// Client is Dial over an established connection (a TCP connection, or a
// pipe in tests). On error the caller closes conn.
func Client(ctx context.Context, conn net.Conn, key cluster.Key, job JobSpec, cfg ClientConfig) (*RemoteSwarm, error) {
	if _, err := checkJob(&job, cfg); err != nil {
		return nil, err
	}
	s, err := ClientSession(ctx, conn, key, cfg)
	if err != nil {
		return nil, err
	}
	return s.openOwned(ctx, job)
}

// openOwned opens the session's only job, which owns the session.
func (s *Session) openOwned(ctx context.Context, job JobSpec) (*RemoteSwarm, error) {
	r, err := s.openJob(ctx, job, true)
	if err != nil {
		s.Close()
		return nil, err
	}
	return r, nil
}

// prepareSession checks cfg and derives the credentials.
func prepareSession(key cluster.Key, cfg ClientConfig) (*credentials, ed25519.PrivateKey, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	creds, err := deriveCredentials(key)
	if err != nil {
		return nil, nil, err
	}
	sign := cfg.CoordinatorKey
	if sign == nil {
		sign = DerivedCoordinatorKey(key)
	} else if len(sign) != ed25519.PrivateKeySize {
		return nil, nil, fmt.Errorf("%w: CoordinatorKey of %d bytes", ErrConfig, len(sign))
	}
	return creds, sign, nil
}

// checkJob checks a job (and cfg) without the network and gives it an id
// if it has none.
func checkJob(job *JobSpec, cfg ClientConfig) (*metainfo.Info, error) {
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
	return info, nil
}

func randomJobID() uint64 {
	var b [8]byte
	rand.Read(b[:])
	if id := binary.BigEndian.Uint64(b[:]); id != 0 {
		return id
	}
	return 1
}
