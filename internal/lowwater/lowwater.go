// Package lowwater tells a TCP connection how many bytes its next read
// waits for (the socket's SO_RCVLOWAT), so that a reader that knows a
// message's length is woken once for the rest of it instead of once per
// packet. On a WAN shaped to 100 Mbit/s a 16 KiB block arrives as a dozen
// packets spread over a millisecond, and each woke the reading goroutine
// for one read of 1448 bytes: half the CPU of a downloading host went on
// those wakeups and reads (issue 15).
//
// The mark is a promise by the caller that at least n more bytes are
// coming on the stream: with a mark above what the peer will send, a read
// that finds nothing buffered waits for bytes that never arrive. A
// wrapping connection that buffers bytes of its own passes the mark down
// less what it holds (Setter); a connection that cannot tell is not
// given one (Set returns errors.ErrUnsupported).
package lowwater

import (
	"errors"
	"net"
)

// Setter is a connection wrapping another that passes a low-water mark
// down to it, less the bytes it buffers itself.
type Setter interface {
	// SetReadLowWater makes a read that finds nothing buffered wait
	// until n bytes can be returned (n <= 1: any byte).
	SetReadLowWater(n int) error
}

// Set makes a read from c that finds nothing buffered wait until n bytes
// can be returned (n <= 1: any byte, the socket's default). A read that
// finds fewer bytes buffered still returns them at once. It returns
// errors.ErrUnsupported when c is neither a *net.TCPConn (on Linux) nor a
// Setter.
func Set(c net.Conn, n int) error {
	n = max(n, 1)
	switch c := c.(type) {
	case Setter:
		return c.SetReadLowWater(n)
	case *net.TCPConn:
		return setTCP(c, n)
	}
	return errors.ErrUnsupported
}
