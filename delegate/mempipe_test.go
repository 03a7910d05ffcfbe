package delegate

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// memPipe is an in-memory connection pair like net.Pipe, but buffered:
// writes never block (a real socket has buffers; net.Pipe's synchronous
// writes deadlock a TLS peer that sends an alert while the other side is
// still writing its flight). Flow control therefore comes from yamux
// alone, which is what the back-pressure tests want to see.
func memPipe() (net.Conn, net.Conn) {
	a, b := newPipeBuf(), newPipeBuf()
	return &memConn{r: a, w: b, name: "mem-a"}, &memConn{r: b, w: a, name: "mem-b"}
}

type pipeBuf struct {
	frozen atomic.Bool // a black hole: data is accepted but never delivered
	mu     sync.Mutex
	buf    []byte
	closed bool // writer closed: EOF after the buffer drains
	notify chan struct{}
}

func newPipeBuf() *pipeBuf { return &pipeBuf{notify: make(chan struct{}, 1)} }

func (p *pipeBuf) signal() {
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

type memConn struct {
	r, w      *pipeBuf
	name      string
	closed    atomic.Bool
	rdl       atomic.Pointer[time.Time]
	closeOnce sync.Once
}

type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }

func (c *memConn) Read(b []byte) (int, error) {
	for {
		if c.closed.Load() {
			return 0, net.ErrClosed
		}
		c.r.mu.Lock()
		if len(c.r.buf) > 0 && !c.r.frozen.Load() {
			n := copy(b, c.r.buf)
			c.r.buf = c.r.buf[n:]
			if len(c.r.buf) == 0 {
				c.r.buf = nil
			}
			c.r.mu.Unlock()
			return n, nil
		}
		eof := c.r.closed
		c.r.mu.Unlock()
		if eof {
			return 0, io.EOF
		}
		var timeout <-chan time.Time
		if dl := c.rdl.Load(); dl != nil && !dl.IsZero() {
			d := time.Until(*dl)
			if d <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
			t := time.NewTimer(d)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-c.r.notify:
		case <-timeout:
		}
	}
}

func (c *memConn) Write(b []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	c.w.mu.Lock()
	if c.w.closed {
		c.w.mu.Unlock()
		return 0, io.ErrClosedPipe
	}
	c.w.buf = append(c.w.buf, b...)
	c.w.mu.Unlock()
	c.w.signal()
	return len(b), nil
}

func (c *memConn) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		for _, p := range []*pipeBuf{c.r, c.w} {
			p.mu.Lock()
			p.closed = true
			p.mu.Unlock()
			p.signal()
		}
	})
	return nil
}

// freeze makes the connection a black hole in both directions (a peer
// that hangs without closing): writes succeed, nothing is delivered.
func (c *memConn) freeze() {
	c.r.frozen.Store(true)
	c.w.frozen.Store(true)
}

func (c *memConn) LocalAddr() net.Addr  { return memAddr(c.name) }
func (c *memConn) RemoteAddr() net.Addr { return memAddr(c.name + "-peer") }
func (c *memConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return nil
}
func (c *memConn) SetReadDeadline(t time.Time) error {
	c.rdl.Store(&t)
	c.r.signal()
	return nil
}
func (c *memConn) SetWriteDeadline(time.Time) error { return nil } // writes never block
