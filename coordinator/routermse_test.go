package coordinator

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"flotilla/peerwire"
	"flotilla/peerwire/mse"
)

// newPolicyRouter is a loopback router under policy p serving ih; it
// returns the job's listener.
func newPolicyRouter(t *testing.T, p mse.Policy, ih [20]byte) (*router, *jobListener) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := newRouter(ln, IncomingConfig{Timeout: 5 * time.Second}.encrypted(p), 0, slog.New(slog.DiscardHandler))
	t.Cleanup(r.close)
	l, err := r.listen(ih)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return r, l
}

// connectTo dials r and sends a BitTorrent handshake for ih, through MSE
// with RC4 if encrypted; it returns the connection or the MSE error.
func connectTo(t *testing.T, r *router, ih [20]byte, encrypted bool) (net.Conn, error) {
	t.Helper()
	c, err := net.Dial("tcp4", r.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var hs bytes.Buffer
	peerwire.WriteHandshake(&hs, peerwire.Handshake{InfoHash: ih, PeerID: [20]byte{'p'}})
	if !encrypted {
		_, err := c.Write(hs.Bytes())
		return c, err
	}
	mc, err := mse.Initiate(c, ih, mse.RC4, hs.Bytes(), time.Now().Add(5*time.Second))
	if err != nil {
		return nil, err
	}
	return mc, nil
}

// routedHandshake is the handshake the job's swarm reads from its next
// connection.
func routedHandshake(t *testing.T, l *jobListener) peerwire.Handshake {
	t.Helper()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	hs, err := peerwire.ReadHandshake(c)
	if err != nil {
		t.Fatalf("routed connection: %v", err)
	}
	return hs
}

// TestRouterEncryption: prefer routes plaintext and MSE connections (the
// initial payload replayed, decrypted), require only MSE, off only
// plaintext; MSE for a torrent not served is closed.
func TestRouterEncryption(t *testing.T) {
	ih := [20]byte{0xab, 1}
	for _, tc := range []struct {
		p             mse.Policy
		encrypted, ok bool
	}{
		{mse.Prefer, false, true}, {mse.Prefer, true, true},
		{mse.Require, false, false}, {mse.Require, true, true},
		{mse.Off, false, true}, {mse.Off, true, false},
	} {
		r, l := newPolicyRouter(t, tc.p, ih)
		c, err := connectTo(t, r, ih, tc.encrypted)
		if err != nil {
			if tc.ok {
				t.Fatalf("%v encrypted=%v: %v", tc.p, tc.encrypted, err)
			}
			continue
		}
		if !tc.ok {
			// The router closes it, counted as failed before the close.
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			var ne net.Error
			if _, err := io.ReadAll(c); errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("%v encrypted=%v: not closed: %v", tc.p, tc.encrypted, err)
			}
			if s := r.Stats(); s.Failed != 1 || s.Routed != 0 {
				t.Fatalf("%v encrypted=%v: %+v, want one failed", tc.p, tc.encrypted, s)
			}
			continue
		}
		hs := routedHandshake(t, l)
		if hs.InfoHash != ih {
			t.Fatalf("%v encrypted=%v: routed a handshake for %x", tc.p, tc.encrypted, hs.InfoHash)
		}
	}
	r, _ := newPolicyRouter(t, mse.Prefer, ih)
	if _, err := connectTo(t, r, [20]byte{0xcd}, true); err == nil {
		t.Fatal("MSE for a torrent not served: handshake succeeded")
	}
}

// TestRouterMSEBounds: under prefer a stranger sending garbage (not the
// protocol string, so taken for an MSE initiator) is closed once the
// synchronisation window has passed, well before the identify Timeout,
// and one that stalls mid-handshake is closed at the Timeout; both count
// as failed.
func TestRouterMSEBounds(t *testing.T) {
	ih := [20]byte{0xab, 2}
	for _, tc := range []struct {
		name    string
		send    []byte
		timeout time.Duration
	}{
		{"garbage", bytes.Repeat([]byte{0xAA}, 96+600), time.Minute},
		{"staller", bytes.Repeat([]byte{0xAA}, 50), 300 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			r := newRouter(ln, IncomingConfig{Timeout: tc.timeout}.encrypted(mse.Prefer), 0, slog.New(slog.DiscardHandler))
			t.Cleanup(r.close)
			l, err := r.listen(ih)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			c, err := net.Dial("tcp4", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write(tc.send)
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			var ne net.Error
			if _, err := io.Copy(io.Discard, c); errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("not closed")
			}
			if s := r.Stats(); s.Failed != 1 || s.Routed != 0 {
				t.Fatalf("%+v, want one failed", s)
			}
		})
	}
}
