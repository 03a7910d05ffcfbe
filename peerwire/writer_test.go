package peerwire

import (
	"bytes"
	"errors"
	"testing"
)

// WritePieceFrom batches pieces read in place with the other messages, in
// order, and a failed read leaves nothing of its piece and the Writer usable.
func TestWritePieceFrom(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriterSize(&buf, 4*BlockSize)
	block := bytes.Repeat([]byte{7}, BlockSize)
	fill := func(b []byte) error { copy(b, block); return nil }
	errRead := errors.New("no such block")
	w.WriteHave(2)
	if err := w.WritePieceFrom(2, 0, BlockSize, fill); err != nil {
		t.Fatal(err)
	}
	if err := w.WritePieceFrom(3, 0, BlockSize, func([]byte) error { return errRead }); !errors.Is(err, errRead) {
		t.Fatalf("failed read: %v", err)
	}
	if err := w.WritePieceFrom(2, BlockSize, BlockSize, fill); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Fatalf("%d bytes written before the buffer filled", buf.Len())
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := AppendMessage(nil, Message{ID: Have, Index: 2})
	want = AppendMessage(want, Message{ID: Piece, Index: 2, Block: block})
	want = AppendMessage(want, Message{ID: Piece, Index: 2, Begin: BlockSize, Block: block})
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatal("pieces read in place differ from AppendMessage")
	}
	// A piece that does not fit flushes what is pending first.
	buf.Reset()
	for i := range 5 {
		if err := w.WritePieceFrom(uint32(i), 0, BlockSize, fill); err != nil {
			t.Fatal(err)
		}
	}
	if got := buf.Len(); got != 3*(4+9+BlockSize) { // a fourth would not fit in 4*BlockSize
		t.Fatalf("wrote %d bytes before Flush, want the three pieces that fit", got)
	}
}
