package peerwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"testing"
	"testing/iotest"

	"flotilla/internal/bitfield"
)

// testLimits: 10 pieces of 64 KiB, the last one 1000 bytes.
var testLimits = DefaultLimits(10, 64*1024, 9*64*1024+1000)

func allMessages() []Message {
	block := make([]byte, BlockSize)
	for i := range block {
		block[i] = byte(i * 7)
	}
	return []Message{
		{KeepAlive: true},
		{ID: Choke},
		{ID: Unchoke},
		{ID: Interested},
		{ID: NotInterested},
		{ID: Have, Index: 9},
		{ID: BitfieldMsg, Bitfield: []byte{0xA5, 0xC0}},
		{ID: Request, Index: 3, Begin: 16384, Length: BlockSize},
		{ID: Request, Index: 9, Begin: 0, Length: 1000},
		{ID: Piece, Index: 3, Begin: 32768, Block: block, Length: BlockSize},
		{ID: Piece, Index: 9, Begin: 999, Block: []byte{42}, Length: 1},
		{ID: Cancel, Index: 3, Begin: 16384, Length: BlockSize},
		{ID: Port, Port: 6881},
		{ID: Suggest, Index: 4},
		{ID: HaveAll},
		{ID: HaveNone},
		{ID: Reject, Index: 5, Begin: 0, Length: MaxAcceptedBlock},
		{ID: AllowedFast, Index: 0},
		{ID: Extended, ExtID: 0, ExtPayload: []byte("d1:md11:ut_metadatai3eee")},
		{ID: Extended, ExtID: 3, ExtPayload: []byte{}},
		{ID: 99, Payload: []byte("future")},
		{ID: 21, Payload: []byte{}},
	}
}

// normalize makes nil and empty slices compare equal.
func normalize(m Message) Message {
	for _, p := range []*[]byte{&m.Bitfield, &m.Block, &m.ExtPayload, &m.Payload} {
		if len(*p) == 0 {
			*p = nil
		}
	}
	return m
}

func TestMessageRoundTrip(t *testing.T) {
	msgs := allMessages()
	var stream []byte
	for _, m := range msgs {
		stream = AppendMessage(stream, m)
	}
	// Both through the zero-copy path and byte by byte.
	for name, src := range map[string]io.Reader{
		"bulk":     bytes.NewReader(stream),
		"one-byte": iotest.OneByteReader(bytes.NewReader(stream)),
		"half":     iotest.HalfReader(bytes.NewReader(stream)),
	} {
		t.Run(name, func(t *testing.T) {
			r := NewReader(src, testLimits)
			for i, want := range msgs {
				got, err := r.ReadMessage()
				if err != nil {
					t.Fatalf("message %d (%v): %v", i, want, err)
				}
				if !reflect.DeepEqual(normalize(got), normalize(want)) {
					t.Fatalf("message %d: got %+v, want %+v", i, got, want)
				}
				if enc, want := AppendMessage(nil, got), AppendMessage(nil, want); !bytes.Equal(enc, want) {
					t.Fatalf("message %d re-encodes differently", i)
				}
			}
			if _, err := r.ReadMessage(); err != io.EOF {
				t.Fatalf("at end: %v, want io.EOF", err)
			}
		})
	}
}

func TestWriterRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriterSize(&buf, 256)
	msgs := allMessages()
	for _, m := range msgs {
		if err := w.WriteMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if w.Buffered() != 0 {
		t.Fatalf("Buffered = %d after Flush", w.Buffered())
	}
	var want []byte
	for _, m := range msgs {
		want = AppendMessage(want, m)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatal("Writer output differs from AppendMessage")
	}
}

func TestWriterBatchesUntilFlush(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.WriteHave(1)
	w.WriteRequest(1, 0, BlockSize)
	w.WriteCancel(1, 0, BlockSize)
	w.WriteReject(1, 0, BlockSize)
	w.WriteSimple(Unchoke)
	w.WriteKeepAlive()
	if buf.Len() != 0 {
		t.Fatalf("%d bytes written before Flush", buf.Len())
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if want := 9 + 3*17 + 5 + 4; buf.Len() != want {
		t.Fatalf("wrote %d bytes, want %d", buf.Len(), want)
	}
	// A piece flushes pending messages first, in order.
	buf.Reset()
	w.WriteHave(2)
	block := bytes.Repeat([]byte{7}, BlockSize)
	if err := w.WritePiece(2, 0, block); err != nil {
		t.Fatal(err)
	}
	want := AppendMessage(nil, Message{ID: Have, Index: 2})
	want = AppendMessage(want, Message{ID: Piece, Index: 2, Block: block})
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatal("piece write not in order with pending messages")
	}
}

type failWriter struct{ n int }

var errDisk = errors.New("boom")

func (f *failWriter) Write(p []byte) (int, error) {
	f.n++
	return 0, errDisk
}

func TestWriterStickyError(t *testing.T) {
	fw := &failWriter{}
	w := NewWriter(fw)
	w.WriteHave(1)
	if err := w.Flush(); !errors.Is(err, errDisk) {
		t.Fatalf("Flush = %v", err)
	}
	if err := w.WriteHave(2); !errors.Is(err, errDisk) {
		t.Fatalf("WriteHave after error = %v", err)
	}
	if err := w.WritePiece(1, 0, make([]byte, BlockSize)); !errors.Is(err, errDisk) {
		t.Fatalf("WritePiece after error = %v", err)
	}
	if fw.n != 1 {
		t.Fatalf("underlying writer called %d times after a sticky error", fw.n)
	}
}

// raw builds a message from a length prefix, an ID and payload bytes.
func raw(length uint32, id MsgID, payload ...byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, length)
	b = append(b, byte(id))
	return append(b, payload...)
}

func u32s(vs ...uint32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

func TestReadMessageMalformed(t *testing.T) {
	bigBlock := make([]byte, MaxAcceptedBlock+1)
	for _, tc := range []struct {
		name string
		lim  Limits
		in   []byte
		want error
	}{
		// Length limits, checked before any payload is read.
		{"oversized piece", testLimits, raw(9+MaxAcceptedBlock+1, Piece), ErrMessageTooLarge},
		{"huge length", testLimits, raw(0xFFFFFFFF, Piece), ErrMessageTooLarge},
		{"huge have", testLimits, raw(0xFFFFFFFF, Have), ErrMessageTooLarge},
		{"huge bitfield", testLimits, raw(0x7FFFFFFF, BitfieldMsg), ErrMessageTooLarge},
		{"huge choke", testLimits, raw(1<<30, Choke), ErrMessageTooLarge},
		{"huge unknown", testLimits, raw(DefaultMaxMessage+1, 99), ErrMessageTooLarge},
		{"huge extended", testLimits, raw(DefaultMaxMessage+1, Extended), ErrMessageTooLarge},
		{"extended over custom cap", Limits{MaxMessage: 100}, raw(102, Extended, make([]byte, 101)...), ErrMessageTooLarge},
		{"bitfield too long for pieces", testLimits, raw(4, BitfieldMsg, 0, 0, 0), ErrBadBitfield},
		{"bitfield unknown count over cap", Limits{MaxMessage: 10}, raw(12, BitfieldMsg), ErrMessageTooLarge},
		{"piece over custom MaxBlock", Limits{MaxBlock: BlockSize}, append(raw(9+BlockSize+1, Piece, u32s(0, 0)...), make([]byte, BlockSize+1)...), ErrMessageTooLarge},
		// Wrong payload lengths of fixed-size messages.
		{"choke with payload", testLimits, raw(2, Choke, 0), ErrBadLength},
		{"unchoke with payload", testLimits, raw(5, Unchoke, 0, 0, 0, 0), ErrBadLength},
		{"interested with payload", testLimits, raw(2, Interested, 0), ErrBadLength},
		{"not interested with payload", testLimits, raw(2, NotInterested, 0), ErrBadLength},
		{"have-all with payload", testLimits, raw(2, HaveAll, 0), ErrBadLength},
		{"have-none with payload", testLimits, raw(2, HaveNone, 0), ErrBadLength},
		{"have short", testLimits, raw(4, Have, 0, 0, 0), ErrBadLength},
		{"have long", testLimits, raw(6, Have, 0, 0, 0, 0, 0), ErrBadLength},
		{"suggest short", testLimits, raw(1, Suggest), ErrBadLength},
		{"allowed-fast short", testLimits, raw(3, AllowedFast, 0, 0), ErrBadLength},
		{"request short", testLimits, raw(12, Request, make([]byte, 11)...), ErrBadLength},
		{"request long", testLimits, raw(14, Request, make([]byte, 13)...), ErrBadLength},
		{"cancel short", testLimits, raw(9, Cancel, make([]byte, 8)...), ErrBadLength},
		{"reject short", testLimits, raw(5, Reject, make([]byte, 4)...), ErrBadLength},
		{"port short", testLimits, raw(2, Port, 1), ErrBadLength},
		{"port long", testLimits, raw(5, Port, 1, 2, 3, 4), ErrBadLength},
		{"piece without header", testLimits, raw(5, Piece, 0, 0, 0, 0), ErrBadLength},
		{"extended without id", testLimits, raw(1, Extended), ErrBadLength},
		// Bitfields.
		{"bitfield short", testLimits, raw(2, BitfieldMsg, 0xff), ErrBadBitfield},
		{"bitfield spare bits", testLimits, raw(3, BitfieldMsg, 0xff, 0xE0), ErrBadBitfield},
		{"bitfield last spare bit", testLimits, raw(3, BitfieldMsg, 0, 0x01), ErrBadBitfield},
		{"bitfield empty", testLimits, raw(1, BitfieldMsg), ErrBadBitfield},
		// Requests, cancels, rejects and pieces outside the torrent.
		{"request zero length", testLimits, raw(13, Request, u32s(0, 0, 0)...), ErrBadRequest},
		{"request over 32 KiB", testLimits, raw(13, Request, u32s(0, 0, MaxAcceptedBlock+1)...), ErrBadRequest},
		{"request over custom 16 KiB", Limits{MaxBlock: BlockSize}, raw(13, Request, u32s(0, 0, BlockSize+1)...), ErrBadRequest},
		{"request index out of range", testLimits, raw(13, Request, u32s(10, 0, BlockSize)...), ErrBadRequest},
		{"request index huge", testLimits, raw(13, Request, u32s(0xFFFFFFFF, 0, BlockSize)...), ErrBadRequest},
		{"request beyond piece", testLimits, raw(13, Request, u32s(0, 64*1024-BlockSize+1, BlockSize)...), ErrBadRequest},
		{"request beyond short last piece", testLimits, raw(13, Request, u32s(9, 0, 1001)...), ErrBadRequest},
		{"request begin overflow", testLimits, raw(13, Request, u32s(0, 0xFFFFFFFF, 2)...), ErrBadRequest},
		{"cancel zero length", testLimits, raw(13, Cancel, u32s(0, 0, 0)...), ErrBadRequest},
		{"cancel beyond piece", testLimits, raw(13, Cancel, u32s(1, 65536, 1)...), ErrBadRequest},
		{"reject over 32 KiB", testLimits, raw(13, Reject, u32s(0, 0, MaxAcceptedBlock+1)...), ErrBadRequest},
		{"reject index out of range", testLimits, raw(13, Reject, u32s(11, 0, 1)...), ErrBadRequest},
		{"piece empty block", testLimits, raw(9, Piece, u32s(0, 0)...), ErrBadRequest},
		{"piece index out of range", testLimits, raw(10, Piece, append(u32s(10, 0), 1)...), ErrBadRequest},
		{"piece beyond last piece", testLimits, raw(11, Piece, append(u32s(9, 999), 1, 2)...), ErrBadRequest},
		{"piece big block within cap but beyond", Limits{NumPieces: 1, PieceLength: MaxAcceptedBlock, TotalLength: MaxAcceptedBlock}, append(raw(9+MaxAcceptedBlock, Piece, u32s(0, 1)...), bigBlock[:MaxAcceptedBlock]...), ErrBadRequest},
		// Piece indexes.
		{"have out of range", testLimits, raw(5, Have, u32s(10)...), ErrBadIndex},
		{"suggest out of range", testLimits, raw(5, Suggest, u32s(1000)...), ErrBadIndex},
		{"allowed-fast out of range", testLimits, raw(5, AllowedFast, u32s(0xFFFFFFFF)...), ErrBadIndex},
		// Short reads.
		{"partial length", testLimits, []byte{0, 0}, io.ErrUnexpectedEOF},
		{"length without id", testLimits, []byte{0, 0, 0, 1}, io.ErrUnexpectedEOF},
		{"truncated have", testLimits, raw(5, Have, 0, 0), io.ErrUnexpectedEOF},
		{"truncated piece", testLimits, raw(9+BlockSize, Piece, make([]byte, 100)...), io.ErrUnexpectedEOF},
		{"truncated big extended", testLimits, raw(200000, Extended, make([]byte, 100000)...), io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tc.in), tc.lim)
			m, err := r.ReadMessage()
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v (msg %v), want %v", err, m, tc.want)
			}
			if tc.want != io.ErrUnexpectedEOF && !errors.Is(err, ErrProtocol) {
				t.Fatalf("%v does not match ErrProtocol", err)
			}
		})
	}
}

func TestUnknownCountAcceptsAnyBitfield(t *testing.T) {
	r := NewReader(bytes.NewReader(raw(4, BitfieldMsg, 0xff, 0xff, 0xff)), Limits{})
	m, err := r.ReadMessage()
	if err != nil || len(m.Bitfield) != 3 {
		t.Fatalf("got %v, %v", m, err)
	}
}

func TestSetLimitsAfterMetadata(t *testing.T) {
	in := append(raw(5, Have, u32s(500)...), raw(5, Have, u32s(500)...)...)
	r := NewReader(bytes.NewReader(in), Limits{})
	if _, err := r.ReadMessage(); err != nil {
		t.Fatalf("unknown piece count: %v", err)
	}
	r.SetLimits(testLimits)
	if _, err := r.ReadMessage(); !errors.Is(err, ErrBadIndex) {
		t.Fatalf("after SetLimits: %v", err)
	}
}

func TestLargeMessagesUseSpareBuffer(t *testing.T) {
	const n = 2_000_000 // 250,000-byte bitfield, larger than the bufio buffer
	bf := bitfield.Full(n)
	ext := bytes.Repeat([]byte("x"), 300_000)
	var stream []byte
	stream = AppendMessage(stream, Message{ID: BitfieldMsg, Bitfield: bf})
	stream = AppendMessage(stream, Message{ID: Extended, ExtID: 2, ExtPayload: ext})
	stream = AppendMessage(stream, Message{ID: Have, Index: n - 1})
	r := NewReader(bytes.NewReader(stream), Limits{NumPieces: n})
	m, err := r.ReadMessage()
	if err != nil || !bytes.Equal(m.Bitfield, bf) {
		t.Fatalf("bitfield: %v", err)
	}
	m, err = r.ReadMessage()
	if err != nil || m.ExtID != 2 || !bytes.Equal(m.ExtPayload, ext) {
		t.Fatalf("extended: %v", err)
	}
	m, err = r.ReadMessage()
	if err != nil || m.ID != Have || m.Index != n-1 {
		t.Fatalf("have: %v %v", m, err)
	}
}

func TestLimitsValidate(t *testing.T) {
	if err := testLimits.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (Limits{}).Validate(); err != nil {
		t.Fatal(err)
	}
	for _, l := range []Limits{
		{NumPieces: -1},
		{PieceLength: -1},
		{NumPieces: 2, PieceLength: 10, TotalLength: 21},
		{NumPieces: 2, PieceLength: 10, TotalLength: 10},
		{MaxBlock: 1 << 30},
	} {
		if l.Validate() == nil {
			t.Errorf("%+v: Validate accepted", l)
		}
	}
}

func TestPieceLen(t *testing.T) {
	for _, tc := range []struct {
		i    int
		want int64
	}{{0, 65536}, {8, 65536}, {9, 1000}, {10, 0}, {-1, 0}} {
		if got := testLimits.PieceLen(tc.i); got != tc.want {
			t.Errorf("PieceLen(%d) = %d, want %d", tc.i, got, tc.want)
		}
	}
	exact := DefaultLimits(2, 100, 200)
	if exact.PieceLen(1) != 100 {
		t.Errorf("exact last piece: %d", exact.PieceLen(1))
	}
}

func TestValidateRequestHelper(t *testing.T) {
	pl := func(i int) int64 { return []int64{100, 50}[i] }
	ok := [][3]uint32{{0, 0, 100}, {1, 49, 1}, {1, 0, 50}}
	for _, c := range ok {
		if err := validateRequest(c[0], c[1], c[2], 2, 100, pl); err != nil {
			t.Errorf("%v: %v", c, err)
		}
	}
	bad := [][3]uint32{{0, 0, 0}, {0, 0, 101}, {2, 0, 1}, {1, 50, 1}, {1, 0xFFFFFFFF, 1}}
	for _, c := range bad {
		if err := validateRequest(c[0], c[1], c[2], 2, 100, pl); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%v: %v", c, err)
		}
	}
}

func TestMsgIDStrings(t *testing.T) {
	for _, m := range allMessages() {
		if m.String() == "" || m.ID.String() == "" {
			t.Errorf("empty String for %d", m.ID)
		}
	}
	if Suggest.IsFast() != true || Have.IsFast() || MsgID(99).Known() || !Extended.Known() {
		t.Error("IsFast/Known wrong")
	}
}

func TestWriterLargeMessagesAndHelpers(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriterSize(&buf, 1024)
	bf := bitfield.Full(100_000)
	eh := ExtHandshake{M: map[string]int{"ut_metadata": 2}, V: "Flotilla"}
	w.WriteSimple(Interested)
	if err := w.WriteBitfield(bf); err != nil {
		t.Fatal(err)
	}
	w.WriteExtHandshake(eh)
	w.WriteExtended(2, []byte("d8:msg_typei0e5:piecei0ee"))
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if cap(w.buf) > 4*1024 {
		t.Fatalf("writer kept a %d-byte buffer", cap(w.buf))
	}
	r := NewReader(&buf, Limits{NumPieces: 100_000})
	for i, check := range []func(Message) bool{
		func(m Message) bool { return m.ID == Interested },
		func(m Message) bool { return m.ID == BitfieldMsg && bytes.Equal(m.Bitfield, bf) },
		func(m Message) bool {
			h, err := ParseExtHandshake(m.ExtPayload)
			return m.ID == Extended && m.ExtID == ExtHandshakeID && err == nil && h.M["ut_metadata"] == 2 && h.V == "Flotilla"
		},
		func(m Message) bool { return m.ID == Extended && m.ExtID == 2 && len(m.ExtPayload) == 25 },
	} {
		m, err := r.ReadMessage()
		if err != nil || !check(m) {
			t.Fatalf("message %d: %v %v", i, m, err)
		}
	}
	if r.Buffered() != 0 {
		t.Fatalf("Buffered = %d", r.Buffered())
	}
}

func TestHugeMaxBlockUsesSpareBuffer(t *testing.T) {
	lim := Limits{MaxBlock: 1 << 20}
	block := bytes.Repeat([]byte{3}, 1<<20)
	stream := AppendMessage(nil, Message{ID: Piece, Index: 1, Begin: 0, Block: block})
	stream = AppendMessage(stream, Message{ID: Piece, Index: 1, Begin: 0, Block: block[:BlockSize]})
	r := NewReader(bytes.NewReader(stream), lim)
	if r.br.Size() > maxRetainedBuffer {
		t.Fatalf("read buffer %d bytes", r.br.Size())
	}
	for _, n := range []int{1 << 20, BlockSize} {
		m, err := r.ReadMessage()
		if err != nil || m.ID != Piece || !bytes.Equal(m.Block, block[:n]) {
			t.Fatalf("piece of %d: %v %v", n, m, err)
		}
	}
}

// TestReaderReset: after Reset a Reader reads the new stream from its
// start, whatever state the old one was left in (a message half read, a
// partial header, an error), and allocates nothing for it.
func TestReaderReset(t *testing.T) {
	first := AppendMessage(nil, Message{ID: Have, Index: 3})
	first = append(first, raw(13, Request, u32s(0, 0)...)...) // truncated
	second := AppendMessage(nil, Message{ID: Request, Index: 1, Begin: 0, Length: 16})
	second = AppendMessage(second, Message{KeepAlive: true})
	r := NewReader(bytes.NewReader(first), testLimits)
	if m, err := r.ReadMessage(); err != nil || m.ID != Have {
		t.Fatalf("first stream: %+v %v", m, err)
	}
	if _, err := r.ReadMessage(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated message: %v", err)
	}
	src := bytes.NewReader(second)
	r.Reset(src)
	if m, err := r.ReadMessage(); err != nil || m.ID != Request || m.Index != 1 || m.Length != 16 {
		t.Fatalf("after Reset: %+v %v", m, err)
	}
	if m, err := r.ReadMessage(); err != nil || !m.KeepAlive {
		t.Fatalf("after Reset: %+v %v", m, err)
	}
	if _, err := r.ReadMessage(); err != io.EOF {
		t.Fatalf("end of the second stream: %v", err)
	}
	allocs := testing.AllocsPerRun(50, func() {
		src.Reset(second)
		r.Reset(src)
		for {
			if _, err := r.ReadMessage(); err != nil {
				break
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per reuse, want 0", allocs)
	}
}
