package delegate

import (
	"errors"
	"fmt"
)

// Errors of the protocol. They are wrapped with context; test with
// errors.Is.
var (
	// ErrAuth: the peer did not prove that it holds the cluster key (the
	// TLS handshake failed). Nothing the peer sent was decoded.
	ErrAuth = errors.New("delegate: peer not authenticated with the cluster key")
	// ErrRefused: the node refused the connection before authenticating
	// it (too many connections or handshakes at once, or it is shutting
	// down), or it refused an authenticated coordinator because it runs
	// its maximum of sessions. Retry later; it says nothing about the key.
	ErrRefused = errors.New("delegate: node refused the connection")
	// ErrNotCoordinator: the peer holds the cluster key but did not prove
	// that it holds the coordinator key this node accepts.
	ErrNotCoordinator = errors.New("delegate: peer is not the coordinator (it holds the cluster key but not the coordinator key)")
	// ErrVersion: the two sides share no protocol version.
	ErrVersion = errors.New("delegate: no common protocol version")
	// ErrProtocol: the peer sent something the protocol does not allow
	// (malformed frame or body, unexpected message, wrong role).
	ErrProtocol = errors.New("delegate: protocol violation")
	// ErrFrameTooLarge: a frame's length is over the cap for its stream.
	// It also matches ErrProtocol.
	ErrFrameTooLarge = fmt.Errorf("%w: frame too large", ErrProtocol)
	// ErrJobRejected: the node refused the job (the reason is wrapped).
	ErrJobRejected = errors.New("delegate: job rejected by node")
	// ErrSessionLost: the session to the peer dropped.
	ErrSessionLost = errors.New("delegate: session lost")
	// ErrTooSlow: the node sent a piece slower than the coordinator's
	// PieceTimeout and MinPieceRate allow; its session was ended and its
	// lease returns to the pool.
	ErrTooSlow = errors.New("delegate: node too slow")
	// ErrRemoteFailed: the node reported that its worker failed.
	ErrRemoteFailed = errors.New("delegate: remote worker failed")
	// ErrClosed: the RemoteSwarm or Server was closed.
	ErrClosed = errors.New("delegate: closed")
	// ErrConfig is wrapped by every Validate error.
	ErrConfig = errors.New("delegate: invalid config")
)
