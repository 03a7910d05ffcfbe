package peerwire

import (
	"bytes"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// TestDetachAfterInterruptedRead: a read interrupted inside a message
// loses nothing; Detach returns the rest of the stream read so far.
func TestDetachAfterInterruptedRead(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	have := AppendMessage(nil, Message{ID: Have, Index: 3})
	next := AppendMessage(nil, Message{ID: Extended, ExtID: 2, ExtPayload: []byte("abcdef")})
	go func() {
		a.Write(have)
		a.Write(next[:5]) // a message cut short
	}()
	r := NewReader(b, Limits{})
	if m, err := r.ReadMessage(); err != nil || m.ID != Have || m.Index != 3 {
		t.Fatalf("first message %v, %v", m, err)
	}
	time.AfterFunc(100*time.Millisecond, func() { b.SetReadDeadline(time.Now()) })
	if _, err := r.ReadMessage(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("interrupted read = %v", err)
	}
	rest, err := r.Detach()
	if err != nil || !bytes.Equal(rest, next[:5]) {
		t.Fatalf("Detach = %x, %v; want %x", rest, err, next[:5])
	}
	b.SetReadDeadline(time.Time{})
	go a.Write(next[5:])
	pc := &PrefixConn{Conn: b, Head: rest}
	if m, err := NewReader(pc, Limits{}).ReadMessage(); err != nil || m.ExtID != 2 || string(m.ExtPayload) != "abcdef" {
		t.Fatalf("after the handover: %v, %v", m, err)
	}
}
