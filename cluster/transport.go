package cluster

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/memberlist"
)

// ctxTransport is memberlist's NetTransport whose outgoing TCP connections
// are dialled with, and closed on, a context that Close cancels. Without it
// Close would wait up to memberlist's TCPTimeout (10 s on a LAN profile) for
// a join attempt stuck on an unreachable address.
type ctxTransport struct {
	*memberlist.NetTransport
	ctx context.Context
}

var _ memberlist.NodeAwareTransport = (*ctxTransport)(nil)

func (t *ctxTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.dial(addr, timeout)
}

func (t *ctxTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.dial(a.Addr, timeout)
}

func (t *ctxTransport) dial(addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(t.ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(t.ctx, func() { conn.Close() })
	return &ctxConn{Conn: conn, stop: stop}, nil
}

type ctxConn struct {
	net.Conn
	stop func() bool
}

func (c *ctxConn) Close() error {
	c.stop()
	return c.Conn.Close()
}

// newMemberlistLogger adapts memberlist's *log.Logger to slog. memberlist
// writes lines like "[WARN] memberlist: ..."; the bracketed level becomes the
// slog level (slog.NewLogLogger would log them all at one level).
func newMemberlistLogger(l *slog.Logger) *log.Logger {
	return log.New(&logWriter{log: l}, "", 0)
}

type logWriter struct{ log *slog.Logger }

func (w *logWriter) Write(p []byte) (int, error) {
	line := bytes.TrimSpace(p)
	level := slog.LevelInfo
	if rest, ok := bytes.CutPrefix(line, []byte("[")); ok {
		if tag, msg, ok := bytes.Cut(rest, []byte("]")); ok {
			switch string(tag) {
			case "DEBUG", "TRACE":
				level = slog.LevelDebug
			case "INFO":
				level = slog.LevelInfo
			case "WARN", "WARNING":
				level = slog.LevelWarn
			case "ERR", "ERROR":
				level = slog.LevelError
			}
			line = bytes.TrimSpace(msg)
		}
	}
	line = bytes.TrimPrefix(line, []byte("memberlist: "))
	if w.log.Enabled(context.Background(), level) {
		w.log.Log(context.Background(), level, string(line), "component", "memberlist")
	}
	return len(p), nil
}
