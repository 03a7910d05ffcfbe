package delegate

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// countingConn counts the writes that reach the connection.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestSessionCoalescesRecords: after the handshake, a 1 MiB write on a
// session's connection reaches the TCP connection in a few writes of many
// TLS records each (not one per 16 KiB record), and arrives intact; a
// small write is sent before Write returns.
func TestSessionCoalescesRecords(t *testing.T) {
	creds, err := deriveCredentials(testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	c1, c2 := net.Pipe()
	client := &countingConn{Conn: c1}
	type result struct {
		conn net.Conn
		err  error
	}
	srv := make(chan result, 1)
	go func() {
		tc, _, _, err := handshake(context.Background(), c2, creds, true,
			helloMsg{Version: ProtocolVersion, MinVersion: MinProtocolVersion, Role: RoleNode, Name: "node"}, 10*time.Second, handshakeHooks{})
		srv <- result{tc, err}
	}()
	tc, _, _, err := handshake(context.Background(), client, creds, false, testClientConfig(t).hello(), 10*time.Second,
		handshakeHooks{sign: DerivedCoordinatorKey(testKey(1))})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	r := <-srv
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.conn.Close()

	payload := bytes.Repeat([]byte("flotilla"), 1<<17) // 1 MiB
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, len(payload))
		io.ReadFull(r.conn, b)
		got <- b
	}()
	before := client.writes.Load()
	if n, err := tc.Write(payload); err != nil || n != len(payload) {
		t.Fatalf("write: %d, %v", n, err)
	}
	if b := <-got; !bytes.Equal(b, payload) {
		t.Fatal("the payload arrived changed")
	}
	writes := client.writes.Load() - before
	if max := int64(len(payload)/coalesceMax + 2); writes > max {
		t.Fatalf("1 MiB took %d writes to the connection, want at most %d (64 would be one per TLS record)", writes, max)
	}
	t.Logf("1 MiB in %d writes", writes)

	// A small write is flushed before Write returns: on a pipe, the
	// reader gets it.
	go func() {
		b := make([]byte, 5)
		io.ReadFull(r.conn, b)
		got <- b
	}()
	if _, err := tc.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if string(b) != "hello" {
			t.Fatalf("read %q", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a small write was held back")
	}
}

// TestCoalescerCloseBreaksABlockedWrite: a write blocked on a peer that
// reads nothing holds the coalescer; Close must still close the
// connection (and so end the write), as crypto/tls expects of the
// connection it closes during a Write.
func TestCoalescerCloseBreaksABlockedWrite(t *testing.T) {
	c1, c2 := net.Pipe() // c2 never reads: a write on c1 blocks
	defer c2.Close()
	c := &coalescer{Conn: c1}
	c.start()
	c.Write(make([]byte, 1000))
	done := make(chan error, 1)
	go func() { done <- c.flush() }()
	time.Sleep(50 * time.Millisecond) // the flush is blocked in the pipe
	closed := make(chan struct{})
	go func() {
		c.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for the blocked write")
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the blocked write succeeded on a closed connection")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the blocked write did not end when the connection closed")
	}
}
