package peerwire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"flotilla/internal/bitfield"
)

// DefaultReadBufferSize is the Reader's default bufio size. It must hold a
// whole piece message (13 + MaxBlock bytes) for the zero-copy path.
const DefaultReadBufferSize = 64 * 1024

// maxRetainedBuffer is the largest spare buffer (for messages that do not
// fit the bufio buffer) kept between calls.
const maxRetainedBuffer = 256 * 1024

// Reader decodes messages from a peer. Not safe for concurrent use.
type Reader struct {
	br      *bufio.Reader
	lim     Limits
	pending int               // bytes of the previous message still to Discard
	big     []byte            // reused buffer for messages larger than the bufio buffer
	lost    bool              // a read of a message larger than the buffer failed midway (Detach)
	low     func(n int) error // SetLowWater's mark setter, nil without one
	lowAt   int               // the mark last set (0: not known)
}

// NewReader returns a Reader with a DefaultReadBufferSize buffer. r should be
// the raw connection (after the handshake); the Reader buffers it.
func NewReader(r io.Reader, lim Limits) *Reader {
	return NewReaderSize(r, lim, DefaultReadBufferSize)
}

// NewReaderSize is NewReader with a given buffer size, raised if needed (up
// to maxRetainedBuffer) so a piece message with a MaxBlock block fits and is
// returned without copying.
func NewReaderSize(r io.Reader, lim Limits, size int) *Reader {
	if need := 4 + int(lim.MaxLength(Piece)); size < need {
		size = min(need, maxRetainedBuffer)
	}
	return &Reader{br: bufio.NewReaderSize(r, size), lim: lim}
}

// Reset makes r read from src as if it were new (with its current limits),
// discarding any buffered data, pending position and error state but
// keeping its buffers, so a Reader can be reused without allocating (a
// fuzz loop, a pool of connections). The low-water setter, which was the
// old source's, is dropped.
func (r *Reader) Reset(src io.Reader) {
	r.br.Reset(src)
	r.pending = 0
	r.lost = false
	r.low = nil
}

// lowWaterMin is the least remainder of a message worth a low-water
// mark: below it the rest is read as it comes.
const lowWaterMin = 2 << 10

// SetLowWater gives the Reader a way to tell its source how many bytes the
// next read should wait for (lowwater.Set on the connection): while it
// waits for the rest of a message whose length it has read, the mark is
// that rest, lowered after every read that returned part of it, so a
// 16 KiB block wakes the reader once or twice rather than once per
// packet; before a message's header it is 1. set must mark only the
// source's own unread bytes (the Reader passes the bytes the stream owes
// it, less what it has buffered). An error from set stops the marks.
func (r *Reader) SetLowWater(set func(n int) error) {
	r.low = set
	r.lowAt = 0
}

// mark sets the low-water mark to n, or to 1 below lowWaterMin.
func (r *Reader) mark(n int) {
	if r.low == nil {
		return
	}
	if n < lowWaterMin {
		n = 1
	}
	if n == r.lowAt {
		return
	}
	if err := r.low(n); err != nil {
		if n > 1 {
			r.low(1) // never leave a mark the stream may not fill
		}
		r.low = nil
		return
	}
	r.lowAt = n
}

// Limits returns the Reader's current limits.
func (r *Reader) Limits() Limits { return r.lim }

// SetLimits replaces the limits, e.g. once a magnet link's metadata is known.
func (r *Reader) SetLimits(lim Limits) { r.lim = lim }

// Buffered returns the number of bytes already read from the connection and
// not yet decoded.
func (r *Reader) Buffered() int { return r.br.Buffered() - r.pending }

// ReadMessage reads and validates the next message. The returned slices
// alias internal buffers and are valid until the next call. It returns
// io.EOF only for a clean close at a message boundary. Any other error
// wraps one of the package's sentinels (all matching ErrProtocol) or the
// read error (io.ErrUnexpectedEOF for a truncated message, a net timeout,
// ...); after an error the stream position is undefined, so the Reader must
// not be used again and the connection should be closed.
func (r *Reader) ReadMessage() (Message, error) {
	if cap(r.big) > maxRetainedBuffer {
		r.big = nil // a rare huge message: do not keep its buffer per connection
	}
	if r.pending > 0 {
		n, err := r.br.Discard(r.pending)
		r.pending -= n
		if err != nil {
			return Message{}, readErr(err, true)
		}
	}
	if r.br.Buffered() < 5 {
		r.mark(1)
	}
	hdr, err := r.br.Peek(4)
	if err != nil {
		return Message{}, readErr(err, len(hdr) > 0)
	}
	length := binary.BigEndian.Uint32(hdr)
	if length == 0 {
		r.br.Discard(4)
		return Message{KeepAlive: true}, nil
	}
	hdr, err = r.br.Peek(5)
	if err != nil {
		return Message{}, readErr(err, true)
	}
	id := MsgID(hdr[4])
	// Everything is checked before reading the payload.
	if err := r.checkLength(id, length); err != nil {
		return Message{}, err
	}
	var p []byte
	total := 4 + int(length)
	if total <= r.br.Size() {
		if r.low != nil {
			// One read at a time, each with the mark at what is
			// still owed: a read returns what is queued below the
			// mark, and the mark must then come down with it.
			for b := r.br.Buffered(); b < total; b = r.br.Buffered() {
				r.mark(total - b)
				if _, err := r.br.Peek(b + 1); err != nil {
					return Message{}, readErr(err, true)
				}
			}
		}
		buf, err := r.br.Peek(total)
		if err != nil {
			return Message{}, readErr(err, true)
		}
		p = buf[5:]
		r.pending = total
	} else {
		r.mark(1)
		r.br.Discard(5)
		n := int(length) - 1
		if cap(r.big) < n {
			r.big = make([]byte, n)
		}
		p = r.big[:n]
		if _, err := io.ReadFull(r.br, p); err != nil {
			r.lost = true
			return Message{}, readErr(err, true)
		}
	}
	return r.decode(id, p)
}

func readErr(err error, mid bool) error {
	if mid && errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	if err == io.EOF {
		return io.EOF
	}
	return fmt.Errorf("peerwire: read message: %w", err)
}

// checkLength verifies the exact length of fixed-size messages and known
// bitfields (ErrBadLength / ErrBadBitfield, also matching
// ErrMessageTooLarge when too long), and the bounds of variable ones.
func (r *Reader) checkLength(id MsgID, length uint32) error {
	var want uint32
	switch id {
	case Choke, Unchoke, Interested, NotInterested, HaveAll, HaveNone:
		want = 1
	case Have, Suggest, AllowedFast:
		want = 5
	case Request, Cancel, Reject:
		want = 13
	case Port:
		want = 3
	case BitfieldMsg:
		if n := r.lim.bitfieldLen(); n >= 0 {
			if want := 1 + uint32(n); length > want {
				return fmt.Errorf("%w: %w: %d bytes for %d pieces", ErrBadBitfield, ErrMessageTooLarge, length-1, r.lim.NumPieces)
			} else if length < want {
				return fmt.Errorf("%w: %d bytes for %d pieces", ErrBadBitfield, length-1, r.lim.NumPieces)
			}
			return nil
		}
	case Piece:
		if length < 9 {
			return fmt.Errorf("%w: piece length %d", ErrBadLength, length)
		}
	case Extended:
		if length < 2 {
			return fmt.Errorf("%w: extended length %d", ErrBadLength, length)
		}
	}
	if want != 0 {
		if length > want {
			return fmt.Errorf("%w: %w: %v length %d, want %d", ErrBadLength, ErrMessageTooLarge, id, length, want)
		} else if length < want {
			return fmt.Errorf("%w: %v length %d, want %d", ErrBadLength, id, length, want)
		}
		return nil
	}
	if max := r.lim.MaxLength(id); length > max {
		return fmt.Errorf("%w: %v length %d over %d", ErrMessageTooLarge, id, length, max)
	}
	return nil
}

func (r *Reader) decode(id MsgID, p []byte) (Message, error) {
	m := Message{ID: id}
	switch id {
	case Choke, Unchoke, Interested, NotInterested, HaveAll, HaveNone:
	case Have, Suggest, AllowedFast:
		m.Index = binary.BigEndian.Uint32(p)
		if err := r.lim.ValidateIndex(m.Index); err != nil {
			return Message{}, fmt.Errorf("%v: %w", id, err)
		}
	case Request, Cancel, Reject:
		m.Index = binary.BigEndian.Uint32(p)
		m.Begin = binary.BigEndian.Uint32(p[4:])
		m.Length = binary.BigEndian.Uint32(p[8:])
		if err := r.lim.ValidateRequest(m.Index, m.Begin, m.Length); err != nil {
			return Message{}, fmt.Errorf("%v: %w", id, err)
		}
	case Piece:
		m.Index = binary.BigEndian.Uint32(p)
		m.Begin = binary.BigEndian.Uint32(p[4:])
		m.Block = p[8:]
		m.Length = uint32(len(m.Block))
		if err := r.lim.ValidateRequest(m.Index, m.Begin, m.Length); err != nil {
			return Message{}, fmt.Errorf("%v: %w", id, err)
		}
	case BitfieldMsg:
		if n := r.lim.NumPieces; n > 0 {
			if err := bitfield.Validate(p, n); err != nil {
				return Message{}, fmt.Errorf("%w: %v", ErrBadBitfield, err)
			}
		}
		m.Bitfield = p
	case Port:
		m.Port = binary.BigEndian.Uint16(p)
	case Extended:
		m.ExtID = p[0]
		m.ExtPayload = p[1:]
	default:
		m.Payload = p
	}
	return m, nil
}
