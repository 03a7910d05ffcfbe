package delegate

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"io"
	"net"
	"sync/atomic"
	"testing"

	"flotilla/internal/testenv"
)

// countConn counts the writes that reach the socket.
type countConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestRecordConnWritesEachWriteAtOnce: the TLS records of one Write reach
// the socket in one write (up to maxBatch), and arrive intact.
func TestRecordConnWritesEachWriteAtOnce(t *testing.T) {
	creds, err := deriveCredentials(testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	a, b := testenv.TCPPair(t)
	cc := &countConn{Conn: a}
	client := tls.Client(&batchConn{Conn: cc}, creds.tlsConfig(false))
	server := tls.Server(b, creds.tlsConfig(true))
	defer client.Close()
	defer server.Close()
	hs := make(chan error, 1)
	go func() { hs <- server.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-hs; err != nil {
		t.Fatal(err)
	}
	w := batchRecords(client)
	if w == net.Conn(client) {
		t.Fatal("batchRecords did not batch a connection made over a batchConn")
	}
	for _, size := range []int{12, 200 << 10, 1 << 20} {
		payload := make([]byte, size)
		rand.Read(payload)
		got := make(chan []byte, 1)
		go func() {
			buf := make([]byte, size)
			if _, err := io.ReadFull(server, buf); err != nil {
				got <- nil
				return
			}
			got <- buf
		}()
		before := cc.writes.Load()
		if n, err := w.Write(payload); err != nil || n != size {
			t.Fatalf("Write(%d bytes) = %d, %v", size, n, err)
		}
		writes := cc.writes.Load() - before
		// A record carries 16 KiB; each batch up to maxBatch bytes.
		if want := int64(size/maxBatch + 1); writes > want {
			t.Errorf("a Write of %d bytes took %d socket writes, want at most %d", size, writes, want)
		}
		if buf := <-got; !bytes.Equal(buf, payload) {
			t.Fatalf("a Write of %d bytes arrived altered", size)
		}
	}
}
