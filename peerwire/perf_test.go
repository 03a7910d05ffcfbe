package peerwire

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// loopReader serves data cyclically, like a socket that never runs dry.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

func pieceStream(n int) []byte {
	block := bytes.Repeat([]byte{0x5a}, BlockSize)
	var s []byte
	for i := range n {
		s = AppendMessage(s, Message{ID: Piece, Index: uint32(i % 10), Begin: uint32(i%4) * BlockSize, Block: block})
	}
	return s
}

func TestReadMessageZeroAllocs(t *testing.T) {
	var s []byte
	for _, m := range allMessages() {
		s = AppendMessage(s, m)
	}
	s = append(s, pieceStream(8)...)
	r := NewReader(&loopReader{data: s}, testLimits)
	for range 100 { // warm up
		if _, err := r.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(2000, func() {
		if _, err := r.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("ReadMessage allocates %.2f per message", allocs)
	}
}

func TestWriterZeroAllocs(t *testing.T) {
	w := NewWriter(io.Discard)
	block := make([]byte, BlockSize)
	allocs := testing.AllocsPerRun(1000, func() {
		w.WriteHave(3)
		w.WriteRequest(1, 0, BlockSize)
		if err := w.WritePiece(1, 0, block); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Writer allocates %.2f per round", allocs)
	}
}

// TestTCPLoopback sends pieces and small messages over a real TCP connection
// (the writev path) and checks every byte.
func TestTCPLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const pieces = 200
	lim := DefaultLimits(pieces, 4*BlockSize, pieces*4*BlockSize)
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		h := testHandshake(DefaultReserved())
		if err := WriteHandshake(c, h); err != nil {
			done <- err
			return
		}
		w := NewWriter(c)
		block := make([]byte, BlockSize)
		for p := range pieces {
			for b := range 4 {
				for i := range block {
					block[i] = byte(p + b + i)
				}
				if err := w.WritePiece(uint32(p), uint32(b*BlockSize), block); err != nil {
					done <- err
					return
				}
			}
			w.WriteHave(uint32(p))
		}
		done <- w.Flush()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := ReadHandshake(c); err != nil {
		t.Fatal(err)
	}
	r := NewReader(c, lim)
	for p := range pieces {
		for b := range 4 {
			m, err := r.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			if m.ID != Piece || m.Index != uint32(p) || m.Begin != uint32(b*BlockSize) || len(m.Block) != BlockSize {
				t.Fatalf("got %v", m)
			}
			for i, c := range m.Block {
				if c != byte(p+b+i) {
					t.Fatalf("piece %d block %d byte %d corrupt", p, b, i)
				}
			}
		}
		m, err := r.ReadMessage()
		if err != nil || m.ID != Have || m.Index != uint32(p) {
			t.Fatalf("have: %v %v", m, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// benchLimits: 10 full pieces of 64 KiB.
var benchLimits = DefaultLimits(10, 64*1024, 10*64*1024)

// copySink copies what it is given, as a socket write would.
type copySink struct{ buf []byte }

func (c *copySink) Write(p []byte) (int, error) {
	n0 := len(p)
	for len(p) > 0 {
		n := copy(c.buf, p)
		p = p[n:]
	}
	return n0, nil
}

func BenchmarkReadPiece(b *testing.B) {
	r := NewReader(&loopReader{data: pieceStream(64)}, benchLimits)
	b.SetBytes(BlockSize)
	b.ReportAllocs()
	for b.Loop() {
		m, err := r.ReadMessage()
		if err != nil || len(m.Block) != BlockSize {
			b.Fatal(err)
		}
	}
}

func BenchmarkWritePiece(b *testing.B) {
	w := NewWriter(&copySink{buf: make([]byte, 256*1024)})
	block := make([]byte, BlockSize)
	b.SetBytes(BlockSize)
	b.ReportAllocs()
	for b.Loop() {
		if err := w.WritePiece(1, BlockSize, block); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteSmallBatched(b *testing.B) {
	w := NewWriter(io.Discard)
	b.ReportAllocs()
	for b.Loop() {
		if err := w.WriteRequest(1, BlockSize, BlockSize); err != nil {
			b.Fatal(err)
		}
	}
	w.Flush()
}

// BenchmarkPieceTCPLoopback measures the codec end to end over loopback TCP:
// a writer goroutine (WritePiece, writev) and ReadMessage on the other side.
func BenchmarkPieceTCPLoopback(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	n := b.N
	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		w := NewWriter(c)
		block := make([]byte, BlockSize)
		for i := range n {
			if err := w.WritePiece(uint32(i%10), 0, block); err != nil {
				errc <- err
				return
			}
		}
		errc <- w.Flush()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r := NewReaderSize(c, benchLimits, benchReadSize)
	b.SetBytes(BlockSize)
	b.ReportAllocs()
	b.ResetTimer()
	for range n {
		if _, err := r.ReadMessage(); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}

// benchReadSize is the read buffer used by BenchmarkPieceTCPLoopback.
var benchReadSize = DefaultReadBufferSize
