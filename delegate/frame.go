package delegate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"flotilla/internal/mpcheck"

	"github.com/vmihailenco/msgpack/v5"
)

// Frame caps (see spec.md, "Framing"). Each message type has its own cap,
// the most it can legitimately need, and a reader checks the type, the
// direction and that cap from the five header bytes before it allocates
// or reads the body.
const (
	// MaxControlFrame caps a control-stream frame (type + body) other
	// than a Job.
	MaxControlFrame = 256 << 10
	// MaxPeersFrame caps a Peers frame: MaxPeersPerMsg addresses of at
	// most 47 bytes ("[IPv6]:port") and the msgpack around them.
	MaxPeersFrame = 16 << 10
	// MaxJobFrame caps a Job frame: its info dictionary holds 20 bytes
	// per piece (32 MiB allows about 1.6 million pieces).
	MaxJobFrame = 32 << 20
	// maxHelloFrame caps the hello frame.
	maxHelloFrame = 4 << 10
	// maxPieceHeaderFrame caps the Piece header frame on a data stream.
	maxPieceHeaderFrame = 256
	// maxMsgpackDepth caps container nesting in a body.
	maxMsgpackDepth = 8
	// maxListChunk is the most piece indices sent in one message; longer
	// lists are split (5 bytes an index at most: 160 KiB, below
	// MaxControlFrame).
	maxListChunk = 32 << 10
	// maxPeersChunk is the most addresses sent in one AddPeers (an IPv6
	// address with its port and msgpack header takes at most 49 bytes:
	// about 100 KiB).
	maxPeersChunk = 2048
	// maxJobElements is the most array and map elements a Job body may
	// declare in all (its trackers: tiers and URLs). A Job frame may be
	// 32 MiB, and msgpack allocates a slice header (24 bytes) per
	// declared element of a [][]string, so without this budget one Job
	// could ask for 24 times its size.
	maxJobElements = 1 << 16
)

// sender is the side of a session that sent a frame.
type sender uint8

const (
	fromCoordinator sender = iota + 1
	fromNode
)

func (s sender) String() string {
	if s == fromCoordinator {
		return "a coordinator"
	}
	return "a node"
}

// controlCap returns the cap (type + body bytes) of a control-stream
// frame of type t sent by s, or 0 if s never sends t on a control stream.
func controlCap(t MsgType, s sender) int {
	switch t {
	case MsgJob:
		if s == fromCoordinator {
			return MaxJobFrame
		}
	case MsgAssign, MsgRevoke, MsgHave, MsgAddPeers, MsgCancel, MsgStop:
		if s == fromCoordinator {
			return MaxControlFrame
		}
	case MsgJobAccepted, MsgJobRejected, MsgStatus, MsgRevoked, MsgFailed, MsgLeaving, MsgLeft:
		if s == fromNode {
			return MaxControlFrame
		}
	case MsgPeers:
		if s == fromNode {
			return MaxPeersFrame
		}
	}
	return 0
}

// elementBudget is the most array and map elements a body of type t may
// declare in all (mpcheck.Check), given its size.
func elementBudget(t MsgType, bodyLen int) int {
	if t == MsgJob {
		return min(bodyLen, maxJobElements)
	}
	return bodyLen
}

// encodeFrame returns a complete frame: uint32 length (big endian) of what
// follows, the type byte, and v encoded with msgpack. It refuses a frame
// its receiver would refuse.
func encodeFrame(t MsgType, v any) ([]byte, error) {
	var buf bytes.Buffer
	buf.Write([]byte{0, 0, 0, 0, byte(t)})
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("delegate: encode %v: %w", t, err)
	}
	b := buf.Bytes()
	limit := max(controlCap(t, fromCoordinator), controlCap(t, fromNode))
	switch t {
	case MsgHello:
		limit = maxHelloFrame
	case MsgPiece:
		limit = maxPieceHeaderFrame
	}
	if len(b)-4 > limit {
		return nil, fmt.Errorf("delegate: encode %v: %w (%d bytes, cap %d)", t, ErrFrameTooLarge, len(b)-4, limit)
	}
	if t == MsgJob {
		if err := mpcheck.Check(b[5:], maxMsgpackDepth, elementBudget(t, len(b)-5)); err != nil {
			return nil, fmt.Errorf("delegate: encode %v (too many trackers?): %w", t, err)
		}
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b, nil
}

// rawFrame builds a frame from a type and an already encoded body.
func rawFrame(t MsgType, body []byte) []byte {
	b := make([]byte, 5+len(body))
	binary.BigEndian.PutUint32(b, uint32(1+len(body)))
	b[4] = byte(t)
	copy(b[5:], body)
	return b
}

// readFrame reads one frame. capOf returns the cap (type + body bytes) of
// a frame of the given type on this stream from this sender, or 0 if the
// type is not allowed there; it is consulted after the five header bytes
// (length and type) and before the body is allocated, so a peer can make
// the reader allocate no more than the cap of a type it may send. A clean
// end of stream before the first byte is io.EOF; anything else incomplete
// is io.ErrUnexpectedEOF.
func readFrame(r io.Reader, capOf func(MsgType) int) (MsgType, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return 0, nil, fmt.Errorf("%w: empty frame", ErrProtocol)
	}
	if n > MaxJobFrame { // no type may have more: do not wait for the type byte
		return 0, nil, fmt.Errorf("%w: %d bytes, no message may have more than %d", ErrFrameTooLarge, n, MaxJobFrame)
	}
	var typ [1]byte
	if _, err := io.ReadFull(r, typ[:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	t := MsgType(typ[0])
	limit := capOf(t)
	if limit == 0 {
		return 0, nil, fmt.Errorf("%w: %v is not allowed here", ErrProtocol, t)
	}
	if uint64(n) > uint64(limit) {
		return 0, nil, fmt.Errorf("%w: %v of %d bytes, cap %d", ErrFrameTooLarge, t, n, limit)
	}
	body := make([]byte, n-1)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return t, body, nil
}

// readControlFrame reads a control-stream frame sent by from: a type that
// side may send, within that type's cap.
func readControlFrame(r io.Reader, from sender) (MsgType, []byte, error) {
	t, body, err := readFrame(r, func(t MsgType) int { return controlCap(t, from) })
	if err != nil && errors.Is(err, ErrProtocol) && !errors.Is(err, ErrFrameTooLarge) {
		err = fmt.Errorf("%w (on a control stream from %v)", err, from)
	}
	return t, body, err
}

// readHelloFrame reads the hello frame.
func readHelloFrame(r io.Reader) (MsgType, []byte, error) {
	return readFrame(r, func(t MsgType) int {
		if t == MsgHello {
			return maxHelloFrame
		}
		return 0
	})
}

// readPieceHeader reads a Piece header frame on a data stream.
func readPieceHeader(r io.Reader) (MsgType, []byte, error) {
	t, body, err := readFrame(r, func(t MsgType) int {
		if t == MsgPiece {
			return maxPieceHeaderFrame
		}
		return 0
	})
	if err != nil && errors.Is(err, ErrProtocol) && !errors.Is(err, ErrFrameTooLarge) {
		err = fmt.Errorf("%w (on a data stream)", err)
	}
	return t, body, err
}

// decodeBody decodes a msgpack body into v (a pointer from newBody). The
// body is first checked structurally (mpcheck.Check): no container may
// declare more elements than bytes remain, and all containers together
// no more than the type's element budget. The check matters: msgpack/v5
// v5.4.1 preallocates a slice of the declared length for typed slices
// (its own allocation limit is disabled by a bug in decodeSliceValue), so
// a six-byte body could otherwise ask for gigabytes, and even lengths
// that fit the body cost up to 24 bytes of memory per byte of body
// ([][]string), which the budget bounds. So the decoder allocates at most
// a small multiple of the frame's size.
func decodeBody(t MsgType, body []byte, v any) error {
	if err := mpcheck.Check(body, maxMsgpackDepth, elementBudget(t, len(body))); err != nil {
		return fmt.Errorf("%w: %v body: %w", ErrProtocol, t, err)
	}
	if err := msgpack.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: %v body: %v", ErrProtocol, t, err)
	}
	return nil
}

// decodeMessage decodes a body of a known type into a fresh value.
func decodeMessage(t MsgType, body []byte) (any, error) {
	v := newBody(t)
	if v == nil {
		return nil, fmt.Errorf("%w: unknown message type %v", ErrProtocol, t)
	}
	if err := decodeBody(t, body, v); err != nil {
		return nil, err
	}
	return v, nil
}
