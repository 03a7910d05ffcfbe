package delegate

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

// SessionConfig tunes the yamux session under the protocol. Both sides
// should use the same values.
type SessionConfig struct {
	// KeepAliveInterval is how often a ping checks an idle session; a
	// session whose ping goes unanswered is closed (EventFailed).
	KeepAliveInterval time.Duration
	// WriteTimeout closes a session whose connection accepts no bytes for
	// this long.
	WriteTimeout time.Duration
	// StreamWindow is the receive window of every stream: the most bytes
	// a sender may have in flight on one stream before the receiver reads.
	// It bounds the coordinator's memory per data stream and is how a slow
	// coordinator throttles a node (spec.md, "Flow control").
	StreamWindow uint32
}

// DefaultSessionConfig returns the session settings used by default.
func DefaultSessionConfig() SessionConfig {
	return SessionConfig{
		KeepAliveInterval: 5 * time.Second,
		WriteTimeout:      10 * time.Second,
		StreamWindow:      1 << 20,
	}
}

// Validate reports the first invalid field.
func (c SessionConfig) Validate() error {
	switch {
	case c.KeepAliveInterval <= 0 || c.WriteTimeout <= 0:
		return fmt.Errorf("%w: session timeouts must be positive", ErrConfig)
	case c.StreamWindow < 256<<10:
		return fmt.Errorf("%w: StreamWindow %d below yamux's minimum 256 KiB", ErrConfig, c.StreamWindow)
	}
	return nil
}

func (c SessionConfig) yamux(log *slog.Logger) *yamux.Config {
	y := yamux.DefaultConfig()
	y.AcceptBacklog = 16
	y.EnableKeepAlive = true
	y.KeepAliveInterval = c.KeepAliveInterval
	y.ConnectionWriteTimeout = c.WriteTimeout
	y.MaxStreamWindowSize = c.StreamWindow
	y.StreamOpenTimeout = 30 * time.Second
	y.StreamCloseTimeout = time.Minute
	y.LogOutput = nil
	y.Logger = yamuxLogger{log}
	return y
}

// yamuxLogger sends yamux's log lines to slog at debug level.
type yamuxLogger struct{ l *slog.Logger }

func (y yamuxLogger) Print(v ...any)                 { y.l.Debug(fmt.Sprint(v...)) }
func (y yamuxLogger) Printf(format string, v ...any) { y.l.Debug(fmt.Sprintf(format, v...)) }
func (y yamuxLogger) Println(v ...any)               { y.l.Debug(fmt.Sprint(v...)) }

// sendQueue is the outbound queue of a control stream: callers append
// frames without blocking; one writer goroutine drains it. The latest
// Status frame of each job is kept apart so that a slow link coalesces
// status updates instead of queueing them.
type sendQueue struct {
	mu     sync.Mutex
	q      [][]byte
	status map[uint64][]byte // by job
	wake   chan struct{}
}

func newSendQueue() *sendQueue { return &sendQueue{wake: make(chan struct{}, 1)} }

func (s *sendQueue) push(frames ...[]byte) {
	s.mu.Lock()
	s.q = append(s.q, frames...)
	s.mu.Unlock()
	s.signal()
}

func (s *sendQueue) setStatus(job uint64, f []byte) {
	s.mu.Lock()
	if s.status == nil {
		s.status = map[uint64][]byte{}
	}
	s.status[job] = f
	s.mu.Unlock()
	s.signal()
}

// dropStatus forgets an ended job's unsent Status.
func (s *sendQueue) dropStatus(job uint64) {
	s.mu.Lock()
	delete(s.status, job)
	s.mu.Unlock()
}

func (s *sendQueue) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// take appends every queued frame to buf (statuses last) and empties
// the queue.
func (s *sendQueue) take(buf []byte) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.q {
		buf = append(buf, f...)
		s.q[i] = nil
	}
	s.q = s.q[:0]
	for job, f := range s.status {
		buf = append(buf, f...)
		delete(s.status, job)
	}
	return buf
}
