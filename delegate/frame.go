package delegate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/vmihailenco/msgpack/v5"
)

// Frame caps (see spec.md, "Framing").
const (
	// MaxControlFrame caps a control-stream frame (type + body).
	MaxControlFrame = 1 << 20
	// MaxJobFrame caps a Job frame: its info dictionary holds 20 bytes
	// per piece (32 MiB allows about 1.6 million pieces).
	MaxJobFrame = 32 << 20
	// maxHelloFrame caps the hello frame.
	maxHelloFrame = 4 << 10
	// maxPieceHeaderFrame caps the Piece header frame on a data stream.
	maxPieceHeaderFrame = 256
	// maxMsgpackDepth caps container nesting in a body.
	maxMsgpackDepth = 8
	// maxListChunk is the most piece indices or addresses sent in one
	// message; longer lists are split (5 bytes an index at most keeps a
	// frame far below MaxControlFrame).
	maxListChunk = 32 << 10
)

// encodeFrame returns a complete frame: uint32 length (big endian) of what
// follows, the type byte, and v encoded with msgpack.
func encodeFrame(t MsgType, v any) ([]byte, error) {
	var buf bytes.Buffer
	buf.Write([]byte{0, 0, 0, 0, byte(t)})
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("delegate: encode %v: %w", t, err)
	}
	b := buf.Bytes()
	limit := MaxControlFrame
	if t == MsgJob {
		limit = MaxJobFrame
	}
	if len(b)-4 > limit {
		return nil, fmt.Errorf("delegate: encode %v: %w (%d bytes)", t, ErrFrameTooLarge, len(b)-4)
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

// readFrame reads one frame of at most max bytes (type + body) and
// returns its type and body. A clean end of stream before the first byte
// is io.EOF; anything else incomplete is io.ErrUnexpectedEOF. The length
// is checked before anything is allocated.
func readFrame(r io.Reader, limit int) (MsgType, []byte, error) {
	return readFrameCap(r, limit, 0, 0)
}

// readControlFrame reads a control-stream frame: at most MaxControlFrame
// bytes, except a Job (its info dictionary grows with the piece count),
// which may have MaxJobFrame.
func readControlFrame(r io.Reader) (MsgType, []byte, error) {
	return readFrameCap(r, MaxControlFrame, MsgJob, MaxJobFrame)
}

// readFrameCap is readFrame where frames of type big may have bigMax
// bytes (0: no exception).
func readFrameCap(r io.Reader, limit int, big MsgType, bigMax int) (MsgType, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return 0, nil, fmt.Errorf("%w: empty frame", ErrProtocol)
	}
	if uint64(n) > uint64(max(limit, bigMax)) {
		return 0, nil, fmt.Errorf("%w: %d bytes, cap %d", ErrFrameTooLarge, n, max(limit, bigMax))
	}
	var typ [1]byte
	if _, err := io.ReadFull(r, typ[:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	t := MsgType(typ[0])
	if uint64(n) > uint64(limit) && (bigMax == 0 || t != big) {
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

// decodeBody decodes a msgpack body into v (a pointer from newBody). The
// body is first checked structurally (checkMsgpack) so that no declared
// length can make the decoder allocate more than the frame's size.
func decodeBody(t MsgType, body []byte, v any) error {
	if err := checkMsgpack(body, maxMsgpackDepth); err != nil {
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

var errMsgpack = errors.New("malformed msgpack")

// checkMsgpack walks one msgpack value that must fill b exactly. It
// rejects truncated values, trailing bytes, the reserved code 0xc1,
// nesting deeper than maxDepth and any array or map that declares more
// elements than bytes remain. The last check matters: msgpack/v5 v5.4.1
// preallocates a slice of the declared length for typed slices
// ([]uint32), so a six-byte body could otherwise ask for gigabytes.
func checkMsgpack(b []byte, maxDepth int) error {
	var stack []int
	pending := 1
	i := 0
	for {
		for pending == 0 {
			if len(stack) == 0 {
				if i != len(b) {
					return fmt.Errorf("%w: %d trailing bytes", errMsgpack, len(b)-i)
				}
				return nil
			}
			pending = stack[len(stack)-1]
			stack = stack[:len(stack)-1]
		}
		if i >= len(b) {
			return fmt.Errorf("%w: truncated", errMsgpack)
		}
		c := b[i]
		i++
		pending--
		rest := len(b) - i
		be := func(k int) (int, bool) { // a big-endian length of k bytes
			if rest < k {
				return 0, false
			}
			var n uint64
			for _, x := range b[i : i+k] {
				n = n<<8 | uint64(x)
			}
			i += k
			rest -= k
			if n > uint64(len(b)) {
				return len(b) + 1, true // surely too long; caught below
			}
			return int(n), true
		}
		skip, items := 0, -1
		ok := true
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		case c >= 0x80 && c <= 0x8f:
			items = 2 * int(c&0x0f)
		case c >= 0x90 && c <= 0x9f:
			items = int(c & 0x0f)
		case c >= 0xa0 && c <= 0xbf:
			skip = int(c & 0x1f)
		case c == 0xc4 || c == 0xd9:
			skip, ok = be(1)
		case c == 0xc5 || c == 0xda:
			skip, ok = be(2)
		case c == 0xc6 || c == 0xdb:
			skip, ok = be(4)
		case c == 0xc7:
			skip, ok = be(1)
			skip++
		case c == 0xc8:
			skip, ok = be(2)
			skip++
		case c == 0xc9:
			skip, ok = be(4)
			skip++
		case c == 0xca || c == 0xce || c == 0xd2:
			skip = 4
		case c == 0xcb || c == 0xcf || c == 0xd3:
			skip = 8
		case c == 0xcc || c == 0xd0:
			skip = 1
		case c == 0xcd || c == 0xd1:
			skip = 2
		case c >= 0xd4 && c <= 0xd8:
			skip = 1 + 1<<(c-0xd4)
		case c == 0xdc:
			items, ok = be(2)
		case c == 0xdd:
			items, ok = be(4)
		case c == 0xde:
			items, ok = be(2)
			items *= 2
		case c == 0xdf:
			items, ok = be(4)
			items *= 2
		default: // 0xc1
			return fmt.Errorf("%w: reserved code 0x%02x", errMsgpack, c)
		}
		if !ok {
			return fmt.Errorf("%w: truncated", errMsgpack)
		}
		if items >= 0 {
			if items > rest {
				return fmt.Errorf("%w: container of %d items in %d bytes", errMsgpack, items, rest)
			}
			if items > 0 {
				if len(stack) >= maxDepth {
					return fmt.Errorf("%w: nested deeper than %d", errMsgpack, maxDepth)
				}
				stack = append(stack, pending)
				pending = items
			}
			continue
		}
		if skip > rest {
			return fmt.Errorf("%w: truncated", errMsgpack)
		}
		i += skip
	}
}
