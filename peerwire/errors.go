package peerwire

import "errors"

// ErrProtocol is matched (errors.Is) by every protocol violation reported by
// this package. A connection that returns it should be closed.
var ErrProtocol = errors.New("peerwire: protocol error")

// protoErr is a sentinel that also matches ErrProtocol.
type protoErr struct{ msg string }

func (e *protoErr) Error() string        { return e.msg }
func (e *protoErr) Is(target error) bool { return target == ErrProtocol }

// Sentinel errors; each also satisfies errors.Is(err, ErrProtocol).
var (
	// ErrMessageTooLarge: a length prefix exceeds the largest legal message
	// for its ID. The connection must be closed.
	ErrMessageTooLarge error = &protoErr{"peerwire: message too large"}
	// ErrBadLength: a message's payload length does not match its ID.
	ErrBadLength error = &protoErr{"peerwire: wrong payload length"}
	// ErrBadBitfield: a bitfield of the wrong length or with spare bits set.
	ErrBadBitfield error = &protoErr{"peerwire: bad bitfield"}
	// ErrBadRequest: a request/cancel/reject/piece with a zero or oversized
	// length, or outside the torrent.
	ErrBadRequest error = &protoErr{"peerwire: bad request"}
	// ErrBadIndex: a have/suggest/allowed-fast with a piece index outside the
	// torrent.
	ErrBadIndex error = &protoErr{"peerwire: piece index out of range"}
	// ErrBadHandshake: the handshake's protocol string is not
	// "\x13BitTorrent protocol".
	ErrBadHandshake error = &protoErr{"peerwire: bad handshake"}
	// ErrBadExtHandshake: a BEP 10 extension handshake that is not a valid
	// bencoded dictionary.
	ErrBadExtHandshake error = &protoErr{"peerwire: bad extension handshake"}
)
