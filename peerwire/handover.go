package peerwire

import (
	"errors"
	"net"
	"net/netip"

	"flotilla/internal/lowwater"
)

// Handover is a peer connection passed from one owner to another with
// its handshakes done: a magnet's metadata fetch (package metadata) gives
// the download's swarm the connections it used instead of closing them,
// which saves the swarm a reconnect, a handshake and the peer's choke
// round per peer.
type Handover struct {
	// Conn is the stream after the BitTorrent handshake (an *mse.Conn's
	// plaintext when encrypted). Its first reads return what the old
	// owner received and did not act on: the peer's extension
	// handshake, bitfield, haves, chokes, in the order they came.
	Conn net.Conn
	// Addr is the peer's address: where it was dialed when Outgoing.
	Addr     netip.AddrPort
	Outgoing bool
	// Encrypted: Conn runs MSE/PE with RC4.
	Encrypted bool
	// Theirs is the peer's BitTorrent handshake.
	Theirs Handshake
	// Greeted: our extension handshake was sent and, if the peer speaks
	// the fast extension, HaveNone (and perhaps Interested, to a peer
	// that has pieces, so that its unchoke is under way); the new owner
	// must not send a
	// bitfield, HaveAll or HaveNone again (BEP 6 allows one, first), and
	// may send its own extension handshake (BEP 10 allows it again).
	Greeted bool
}

// ErrNotDetachable: the Reader consumed part of a message it failed to
// read (one larger than its buffer), so the stream's position is lost.
var ErrNotDetachable = errors.New("peerwire: reader lost its position in the stream")

// Detach returns a copy of the bytes the Reader read from its source and
// has not decoded: what a new reader of the same stream must see first.
// It is meant for a Reader whose last ReadMessage was interrupted (a read
// deadline in the past) while waiting at or inside a message that fits
// its buffer: the Reader only peeks until a whole message is buffered, so
// nothing was lost. A low-water mark it set is lowered to 1 for the new
// reader. After Detach the Reader must not be used.
func (r *Reader) Detach() ([]byte, error) {
	r.mark(1)
	if r.lost {
		return nil, ErrNotDetachable
	}
	if r.pending > 0 {
		if _, err := r.br.Discard(r.pending); err != nil {
			return nil, ErrNotDetachable
		}
		r.pending = 0
	}
	b, _ := r.br.Peek(r.br.Buffered())
	return append([]byte(nil), b...), nil
}

// PrefixConn is a net.Conn whose first reads return Head, then Conn's.
type PrefixConn struct {
	net.Conn
	Head []byte
}

// SetReadLowWater passes a low-water mark to Conn, less the bytes of Head
// still to read (lowwater.Setter).
func (c *PrefixConn) SetReadLowWater(n int) error {
	return lowwater.Set(c.Conn, n-len(c.Head))
}

// Read implements net.Conn.
func (c *PrefixConn) Read(p []byte) (int, error) {
	if len(c.Head) > 0 {
		n := copy(p, c.Head)
		c.Head = c.Head[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
