package peerwire

import (
	"fmt"
	"io"
	"net"

	"flotilla/internal/bitfield"
)

// DefaultWriteBufferSize is the Writer's default batching buffer size.
const DefaultWriteBufferSize = 64 * 1024

// Writer encodes messages to a peer, batching small messages in a buffer
// until Flush or until the buffer fills. Not safe for concurrent use. After
// a write error every method returns that error (sticky).
type Writer struct {
	w    io.Writer
	buf  []byte
	size int
	vec  net.Buffers
	arr  [2][]byte
	err  error
}

// NewWriter returns a Writer with a DefaultWriteBufferSize buffer.
func NewWriter(w io.Writer) *Writer { return NewWriterSize(w, DefaultWriteBufferSize) }

// NewWriterSize returns a Writer that flushes automatically once size bytes
// are pending.
func NewWriterSize(w io.Writer, size int) *Writer {
	if size < 64 {
		size = 64
	}
	return &Writer{w: w, buf: make([]byte, 0, size), size: size}
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
		w.buf = AppendPieceHeader(w.buf, index, begin, len(block))
		w.buf = append(w.buf, block...)
		return nil
	}
	w.buf = AppendPieceHeader(w.buf, index, begin, len(block))
	w.arr[0], w.arr[1] = w.buf, block
	w.vec = w.arr[:]
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
