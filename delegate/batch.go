package delegate

import (
	"crypto/tls"
	"net"
	"sync"
)

// maxBatch is the most record bytes a batchConn gathers before it writes
// them out.
const maxBatch = 256 << 10

// batchConn is the socket under a session's TLS: it passes writes
// through, except while a recordConn's Write runs, when it gathers the
// records that Write makes into one socket write. crypto/tls writes every
// record of at most 16 KiB with a syscall of its own, and yamux writes a
// frame's 12-byte header apart from its body, so a 256 KiB frame of a
// shipped piece cost 17 writes and as many packets on the cluster link.
type batchConn struct {
	net.Conn
	mu  sync.Mutex
	on  bool
	buf []byte
}

func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.on {
		return c.Conn.Write(p)
	}
	if len(c.buf)+len(p) > maxBatch {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > maxBatch {
			return c.Conn.Write(p)
		}
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

// gather starts gathering writes.
func (c *batchConn) gather() {
	c.mu.Lock()
	c.on = true
	c.mu.Unlock()
}

// release writes out what was gathered and passes writes through again.
func (c *batchConn) release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on = false
	return c.flushLocked()
}

func (c *batchConn) flushLocked() error {
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	c.buf = c.buf[:0]
	return err
}

// recordConn is a session's TLS connection whose every Write reaches the
// socket as one write (up to maxBatch bytes of records).
type recordConn struct {
	*tls.Conn
	raw *batchConn
	wmu sync.Mutex
}

// batchRecords returns tc with batched writes if it runs over a
// batchConn (handshake made it so), else tc.
func batchRecords(tc *tls.Conn) net.Conn {
	if bc, ok := tc.NetConn().(*batchConn); ok {
		return &recordConn{Conn: tc, raw: bc}
	}
	return tc
}

func (c *recordConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.raw.gather()
	n, err := c.Conn.Write(p)
	if ferr := c.raw.release(); err == nil && ferr != nil {
		// The records were accepted by TLS but not sent: the
		// stream cannot carry on.
		return 0, ferr
	}
	return n, err
}
