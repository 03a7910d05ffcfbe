package peerwire

import (
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"flotilla/internal/bitfield"
)

// DefaultWriteBufferSize is the Writer's default batching buffer size.
const DefaultWriteBufferSize = 64 * 1024

// Writer encodes messages to a peer, batching messages in a buffer until
// Flush or until the buffer fills. The buffer is allocated on first use, so
// an idle Writer holds none. Not safe for concurrent use. After a write
// error every method returns that error (sticky).
type Writer struct {
	w       io.Writer
	buf     []byte
	size    int
	vec     net.Buffers
	arr     [2][]byte
	err     error
	timeout time.Duration // SetWriteTimeout
}

// NewWriter returns a Writer with a DefaultWriteBufferSize buffer.
func NewWriter(w io.Writer) *Writer { return NewWriterSize(w, DefaultWriteBufferSize) }

// NewWriterSize returns a Writer that flushes automatically once size bytes
// are pending.
func NewWriterSize(w io.Writer, size int) *Writer {
	if size < 64 {
		size = 64
	}
	return &Writer{w: w, size: size}
}

// SetWriteTimeout makes every write to the underlying writer, if it has a
// write deadline (a net.Conn), fail once it takes longer than d: the
// deadline is set d ahead before each write. Zero (the default) sets none.
func (w *Writer) SetWriteTimeout(d time.Duration) { w.timeout = d }

// setDeadline applies the write timeout before a write.
func (w *Writer) setDeadline() {
	if w.timeout <= 0 {
		return
	}
	if c, ok := w.w.(interface{ SetWriteDeadline(time.Time) error }); ok {
		c.SetWriteDeadline(time.Now().Add(w.timeout))
	}
}

// Buffered returns the number of bytes waiting for Flush.
func (w *Writer) Buffered() int { return len(w.buf) }

// WriteMessage appends m to the buffer, flushing first if it would not fit
// and afterwards if the buffer is full (a message larger than the buffer
// grows it for that one write). Piece messages go through WritePiece.
func (w *Writer) WriteMessage(m Message) error {
	if w.err != nil {
		return w.err
	}
	if !m.KeepAlive && m.ID == Piece {
		return w.WritePiece(m.Index, m.Begin, m.Block)
	}
	n := 4
	if !m.KeepAlive {
		n += 1 + m.payloadLen()
	}
	if len(w.buf)+n > w.size && len(w.buf) > 0 {
		if err := w.Flush(); err != nil {
			return err
		}
	}
	w.buf = AppendMessage(w.buf, m)
	if len(w.buf) >= w.size {
		return w.Flush()
	}
	return nil
}

// Convenience encoders; each behaves like WriteMessage.

// WriteHave queues a have message.
func (w *Writer) WriteHave(index uint32) error {
	return w.WriteMessage(Message{ID: Have, Index: index})
}

// WriteRequest queues a request message.
func (w *Writer) WriteRequest(index, begin, length uint32) error {
	return w.WriteMessage(Message{ID: Request, Index: index, Begin: begin, Length: length})
}

// WriteCancel queues a cancel message.
func (w *Writer) WriteCancel(index, begin, length uint32) error {
	return w.WriteMessage(Message{ID: Cancel, Index: index, Begin: begin, Length: length})
}

// WriteReject queues a reject message (BEP 6).
func (w *Writer) WriteReject(index, begin, length uint32) error {
	return w.WriteMessage(Message{ID: Reject, Index: index, Begin: begin, Length: length})
}

// WriteExtended queues a BEP 10 extended message.
func (w *Writer) WriteExtended(extID uint8, payload []byte) error {
	return w.WriteMessage(Message{ID: Extended, ExtID: extID, ExtPayload: payload})
}

// WriteExtHandshake queues the BEP 10 extension handshake h.
func (w *Writer) WriteExtHandshake(h ExtHandshake) error {
	return w.WriteExtended(ExtHandshakeID, h.Encode())
}

// WriteBitfield queues a bitfield message.
func (w *Writer) WriteBitfield(b bitfield.Bitfield) error {
	return w.WriteMessage(Message{ID: BitfieldMsg, Bitfield: b})
}

// WriteSimple queues a payload-less message (choke, unchoke, interested,
// not interested, have-all, have-none).
func (w *Writer) WriteSimple(id MsgID) error { return w.WriteMessage(Message{ID: id}) }

// WriteKeepAlive queues a keep-alive.
func (w *Writer) WriteKeepAlive() error { return w.WriteMessage(Message{KeepAlive: true}) }

// WritePiece writes any buffered messages, then the piece header and block,
// in one vectored write (writev when the underlying writer is a net.Conn),
// without copying the block. The block may be reused as soon as WritePiece
// returns. Tiny blocks are simply copied into the buffer.
func (w *Writer) WritePiece(index, begin uint32, block []byte) error {
	if w.err != nil {
		return w.err
	}
	if len(w.buf)+13+len(block) <= w.size && len(block) < 1024 {
		w.buf = appendPieceHeader(w.buf, index, begin, len(block))
		w.buf = append(w.buf, block...)
		return nil
	}
	w.buf = appendPieceHeader(w.buf, index, begin, len(block))
	w.arr[0], w.arr[1] = w.buf, block
	w.vec = w.arr[:]
	w.setDeadline()
	_, err := w.vec.WriteTo(w.w)
	w.arr[0], w.arr[1] = nil, nil
	w.vec = nil
	w.buf = w.buf[:0]
	if err != nil {
		w.err = fmt.Errorf("peerwire: write piece: %w", err)
		return w.err
	}
	return nil
}

// WritePieceFrom queues a piece message of length bytes whose block read
// fills in place, in the Writer's buffer: nothing is copied beyond what
// read writes, and pieces are batched like other messages (flushed first
// if the piece would not fit, and once the buffer is full). Use it when
// the block must be read from somewhere anyway (an uploader reading from
// disk); WritePiece when it is already in memory. If read fails, the
// piece is taken back out of the buffer and read's error returned: the
// Writer stays usable.
func (w *Writer) WritePieceFrom(index, begin uint32, length int, read func(block []byte) error) error {
	if w.err != nil {
		return w.err
	}
	if len(w.buf)+13+length > w.size && len(w.buf) > 0 {
		if err := w.Flush(); err != nil {
			return err
		}
	}
	start := len(w.buf)
	w.buf = appendPieceHeader(w.buf, index, begin, length)
	w.buf = slices.Grow(w.buf, length)[:len(w.buf)+length]
	if err := read(w.buf[len(w.buf)-length:]); err != nil {
		w.buf = w.buf[:start]
		return err
	}
	if len(w.buf) >= w.size {
		return w.Flush()
	}
	return nil
}

// WriteRaw queues already-encoded bytes (e.g. from AppendMessage).
func (w *Writer) WriteRaw(b []byte) error {
	if w.err != nil {
		return w.err
	}
	w.buf = append(w.buf, b...)
	if len(w.buf) >= w.size {
		return w.Flush()
	}
	return nil
}

// Flush writes all buffered messages.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if len(w.buf) == 0 {
		return nil
	}
	w.setDeadline()
	_, err := w.w.Write(w.buf)
	if cap(w.buf) > 4*w.size { // don't keep a huge buffer after one large message
		w.buf = make([]byte, 0, w.size)
	} else {
		w.buf = w.buf[:0]
	}
	if err != nil {
		w.err = fmt.Errorf("peerwire: write: %w", err)
		return w.err
	}
	return nil
}
