//go:build linux

package lowwater

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"flotilla/internal/testenv"
)

func tcpPair(t *testing.T) (client, server *net.TCPConn) { return testenv.TCPPair(t) }

// readAsync reads once from c into a buffer of n bytes.
func readAsync(c net.Conn, n int) <-chan []byte {
	ch := make(chan []byte, 1)
	go func() {
		b := make([]byte, n)
		m, err := c.Read(b)
		if err != nil {
			ch <- nil
			return
		}
		ch <- b[:m]
	}()
	return ch
}

func TestSetMakesAnEmptyReadWaitForTheMark(t *testing.T) {
	client, server := tcpPair(t)
	if err := Set(server, 1000); err != nil {
		t.Fatalf("Set: %v", err)
	}
	got := readAsync(server, 4096)
	time.Sleep(100 * time.Millisecond) // the reader waits in the poller
	if _, err := client.Write(make([]byte, 600)); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		t.Fatalf("read returned %d bytes below the mark of 1000", len(b))
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := client.Write(make([]byte, 400)); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if len(b) != 1000 {
			t.Fatalf("read returned %d bytes, want the 1000 of the mark at once", len(b))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read did not return once the mark was reached")
	}

	// Back to 1: a single byte wakes the reader.
	if err := Set(server, 1); err != nil {
		t.Fatal(err)
	}
	got = readAsync(server, 4096)
	client.Write([]byte{7})
	select {
	case b := <-got:
		if len(b) != 1 {
			t.Fatalf("read returned %d bytes, want 1", len(b))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read did not return a byte with the mark at 1")
	}
}

func TestSetAMarkAlreadyReachedWakesAWaitingReader(t *testing.T) {
	client, server := tcpPair(t)
	Set(server, 1000)
	got := readAsync(server, 4096)
	time.Sleep(100 * time.Millisecond) // the reader waits in the poller
	client.Write(make([]byte, 10))
	time.Sleep(100 * time.Millisecond)
	// Lowering the mark below what is queued must wake the reader.
	if err := Set(server, 5); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if len(b) != 10 {
			t.Fatalf("read returned %d bytes, want 10", len(b))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("lowering the mark did not wake the reader")
	}
}

func TestSetAClosedPeerWakesTheReader(t *testing.T) {
	client, server := tcpPair(t)
	Set(server, 1000)
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(server, make([]byte, 1000))
		done <- err
	}()
	client.Write(make([]byte, 100))
	client.Close()
	select {
	case err := <-done:
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("read ended with %v, want an unexpected EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a peer that closed below the mark left the reader waiting")
	}
}

// wrapper buffers head bytes before its Conn, as a replaying connection
// does.
type wrapper struct {
	net.Conn
	head []byte
	got  []int
}

func (w *wrapper) SetReadLowWater(n int) error {
	w.got = append(w.got, n)
	return Set(w.Conn, n-len(w.head))
}

func TestSetPassesThroughSetters(t *testing.T) {
	_, server := tcpPair(t)
	w := &wrapper{Conn: server, head: make([]byte, 100)}
	if err := Set(w, 50); err != nil {
		t.Fatalf("a mark below the wrapper's own bytes: %v", err)
	}
	if err := Set(w, 0); err != nil || w.got[len(w.got)-1] != 1 {
		t.Fatalf("Set(0) gave the setter %v (err %v), want 1", w.got, err)
	}
	outer := &wrapper{Conn: w}
	if err := Set(outer, 4000); err != nil || len(w.got) != 3 || w.got[2] != 4000 {
		t.Fatalf("nested setters: inner saw %v, err %v", w.got, err)
	}
}
