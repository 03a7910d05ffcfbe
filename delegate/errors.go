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
	// ErrNodeDiskFull: the node's data directory is full (ENOSPC or
	// EDQUOT). The node fails the job (its lease returns to the pool at
	// once) or rejects a new one until space is freed; on the coordinator
	// the session's error (Err, EventFailed, Dial's) matches it too.
	ErrNodeDiskFull = errors.New("delegate: node disk full")
	// ErrNodeBusy: the node runs its maximum of jobs (ServerConfig.MaxJobs
	// in all, MaxJobsPerSession on one session), or speaks a protocol
	// version that carries one job per session. The job was refused
	// (ErrJobRejected matches too); the session goes on. Retry later.
	ErrNodeBusy = errors.New("delegate: node busy with its maximum of jobs")
	// ErrNodeLeft: the node is stopping cleanly (Leaving, Left): it
	// shipped the pieces it finished and gave back the others; the job
	// ended without losing any. On a node it is why a Job is rejected
	// while the node leaves (code "leaving").
	ErrNodeLeft = errors.New("delegate: node left (stopped cleanly)")
	// ErrDataDirInUse: another Server (in this or another process) uses
	// the same DataDir.
	ErrDataDirInUse = errors.New("delegate: data directory used by another node")
	// ErrClosed: the RemoteSwarm or Server was closed.
	ErrClosed = errors.New("delegate: closed")
	// ErrConfig is wrapped by every Validate error.
	ErrConfig = errors.New("delegate: invalid config")
)

// Failure codes carried beside the text in Failed and JobRejected, so that
// the coordinator can match the cause with errors.Is.
const (
	codeDiskFull = "disk_full"
	codeJobs     = "jobs"    // JobRejected: the node runs its maximum of jobs (ErrNodeBusy)
	codeLeaving  = "leaving" // JobRejected: the node is stopping (ErrNodeLeft)
)

// failCode is the code for err ("" if none).
func failCode(err error) string {
	switch {
	case errors.Is(err, ErrNodeDiskFull):
		return codeDiskFull
	case errors.Is(err, ErrNodeBusy):
		return codeJobs
	case errors.Is(err, ErrNodeLeft):
		return codeLeaving
	}
	return ""
}

// remoteError is a node's failure as the coordinator sees it: the node's
// text, matching the sentinel its code names.
type remoteError struct {
	msg   string
	cause error // nil: no code, or one this version does not know
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.cause }

func remoteErr(msg, code string) error {
	e := &remoteError{msg: msg}
	switch code {
	case codeDiskFull:
		e.cause = ErrNodeDiskFull
	case codeJobs:
		e.cause = ErrNodeBusy
	case codeLeaving:
		e.cause = ErrNodeLeft
	}
	return e
}
