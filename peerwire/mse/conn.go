package mse

import (
	"crypto/rand"
	"crypto/rc4"
	"io"
	"net"
	"sync"
	"time"

	"flotilla/internal/lowwater"
)

// Conn is a connection after an MSE handshake. Read returns first the
// initiator's initial payload (on the responder's side), then the stream,
// decrypted if the handshake selected RC4; Write encrypts if it did.
// Like a net.Conn, one Read and one Write may run at once; concurrent
// Writes are serialised.
type Conn struct {
	net.Conn
	method Method
	skey   [20]byte
	plain  []byte // the initial payload, not yet read (already decrypted)
	head   []byte // raw bytes read during the handshake, not yet read
	dec    *rc4.Cipher

	wmu  sync.Mutex
	enc  *rc4.Cipher
	wbuf []byte
}

func newConn(c net.Conn, r result) *Conn {
	return &Conn{Conn: c, method: r.method, skey: r.skey, plain: r.ia, head: r.head, dec: r.dec, enc: r.enc}
}

// Method is what the handshake selected: RC4 or Plaintext.
func (c *Conn) Method() Method { return c.method }

// InfoHash is the SKEY of the handshake: the torrent the connection is for.
func (c *Conn) InfoHash() [20]byte { return c.skey }

// SetReadLowWater passes a low-water mark to the connection under c, less
// the bytes c holds from the handshake (lowwater.Setter): the stream's
// bytes are the socket's one for one.
func (c *Conn) SetReadLowWater(n int) error {
	return lowwater.Set(c.Conn, n-len(c.plain)-len(c.head))
}

func (c *Conn) Read(p []byte) (int, error) {
	if len(c.plain) > 0 {
		n := copy(p, c.plain)
		c.plain = c.plain[n:]
		return n, nil
	}
	var n int
	var err error
	if len(c.head) > 0 {
		n = copy(p, c.head)
		c.head = c.head[n:]
	} else {
		n, err = c.Conn.Read(p)
	}
	if c.dec != nil && n > 0 {
		c.dec.XORKeyStream(p[:n], p[:n])
	}
	return n, err
}

// writeChunk bounds the buffer an encrypting Write uses.
const writeChunk = 64 << 10

func (c *Conn) Write(p []byte) (int, error) {
	if c.enc == nil {
		return c.Conn.Write(p)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	written := 0
	for len(p) > 0 {
		n := min(len(p), writeChunk)
		if cap(c.wbuf) < n {
			c.wbuf = make([]byte, min(max(n, 4<<10), writeChunk))
		}
		b := c.wbuf[:n]
		c.enc.XORKeyStream(b, p[:n])
		m, err := c.Conn.Write(b)
		written += m
		if err != nil {
			// The key stream has moved past bytes not sent: the
			// connection cannot carry on.
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

// Initiate runs the initiator's handshake on c for the torrent skey,
// offering the methods in provide and sending ia (at most
// MaxInitialPayload bytes, may be empty) as the initial payload. The
// handshake must end by deadline. On error the caller closes c.
func Initiate(c net.Conn, skey [20]byte, provide Method, ia []byte, deadline time.Time) (*Conn, error) {
	in := initiator{skey: skey, provide: provide, ia: ia, padA: randomPad, padC: noPad, rnd: rand.Reader}
	return handshake(c, deadline, in.run)
}

// Accept runs the responder's handshake on c: skeys finds the torrent the
// initiator asks for and allow is the methods we accept (RC4 is chosen
// when both sides have it). The handshake must end by deadline. Bytes of
// the handshake already read from c must be replayed by c's Read. On
// error the caller closes c.
func Accept(c net.Conn, skeys SKeyFunc, allow Method, deadline time.Time) (*Conn, error) {
	re := responder{skeys: skeys, allow: allow, padB: randomPad, padD: noPad, rnd: rand.Reader}
	return handshake(c, deadline, re.run)
}

func handshake(c net.Conn, deadline time.Time, run func(rw io.ReadWriter) (result, error)) (*Conn, error) {
	c.SetDeadline(deadline)
	r, err := run(c)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return newConn(c, r), nil
}
