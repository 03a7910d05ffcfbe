package peerswarm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"flotilla/internal/lowwater"
	"flotilla/peerwire"
	"flotilla/peerwire/mse"
)

// errPlainRefused closes a plaintext peer under mse.Require, errMSERefused
// an MSE one under mse.Off.
var (
	errEncryptedHandshake = errors.New("encrypted handshake")
	errPlainRefused       = errors.New("swarm: plaintext handshake refused (encryption required)")
	errMSERefused         = errors.New("swarm: not a plaintext BitTorrent handshake (encryption off)")
)

// dialConn connects to addr and, per cfg.Encryption, runs the MSE
// initiator's handshake on it (offering p.Provide(), our BitTorrent handshake in
// the initial payload, which saves a round trip: see sentInPayload);
// under mse.Prefer a failed or refused one is redialled in plaintext. The
// handshake is bounded by HandshakeTimeout (as the BitTorrent one: a busy
// peer may answer late) and interrupted by Close. A peer that took the
// connection and failed the handshake is errEncryptedHandshake.
func (w *wire) dialConn(addr netip.AddrPort) (net.Conn, error) {
	d := net.Dialer{Timeout: w.cfg.DialTimeout}
	c, err := d.DialContext(w.ctx, "tcp", addr.String())
	p := w.cfg.Encryption
	if err != nil || !p.Initiate() {
		return c, err
	}
	w.tuneConn(c)
	if !w.trackHandshake(c) {
		c.Close()
		return nil, net.ErrClosed
	}
	var ia bytes.Buffer
	peerwire.WriteHandshake(&ia, w.ourHandshake())
	mc, err := mse.Initiate(c, w.cfg.InfoHash, p.Provide(), ia.Bytes(), time.Now().Add(w.cfg.HandshakeTimeout))
	w.untrackHandshake(c)
	if err == nil {
		return mc, nil
	}
	c.Close()
	if !p.Fallback() {
		return nil, fmt.Errorf("%w: %w", errEncryptedHandshake, err)
	}
	w.log.Debug("encrypted handshake failed; redialling in plaintext", "peer", addr, "err", err)
	if c, err = d.DialContext(w.ctx, "tcp", addr.String()); err == nil {
		w.tuneConn(c)
	}
	return c, err
}

// incomingConn returns the stream of an incoming connection per
// cfg.Encryption: one the coordinator's router already decrypted (an
// *mse.Conn) as it is; otherwise the first 20 bytes tell a plaintext
// handshake (refused under mse.Require) from an MSE initiator, answered
// for our torrent (refused under mse.Off). The bytes read are replayed.
// The handshake is bounded by timeout, its first byte by firstByte.
func (w *wire) incomingConn(c net.Conn, inner net.Conn, timeout, firstByte time.Duration) (net.Conn, error) {
	p := w.cfg.Encryption
	if _, ok := inner.(*mse.Conn); ok || p == mse.Off {
		return c, nil
	}
	if !w.trackHandshake(c) {
		return nil, net.ErrClosed
	}
	defer w.untrackHandshake(c)
	deadline := time.Now().Add(timeout)
	c.SetReadDeadline(deadline)
	var r io.Reader = c
	if firstByte > 0 && firstByte < timeout {
		c.SetReadDeadline(time.Now().Add(firstByte))
		r = &firstByteReader{c: c, deadline: deadline}
	}
	head := make([]byte, 1+len(peerwire.Pstr))
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, fmt.Errorf("read handshake: %w", err)
	}
	replay := &replayConn{Conn: c, head: head}
	if head[0] == byte(len(peerwire.Pstr)) && string(head[1:]) == peerwire.Pstr {
		if !p.AcceptPlain() {
			return nil, errPlainRefused
		}
		c.SetReadDeadline(time.Time{})
		return replay, nil
	}
	skey := func(req2 [20]byte) ([20]byte, bool) {
		return w.cfg.InfoHash, req2 == mse.Req2(w.cfg.InfoHash)
	}
	mc, err := mse.Accept(replay, skey, p.AcceptMethods(), deadline)
	if err != nil {
		return nil, fmt.Errorf("encrypted handshake: %w", err)
	}
	return mc, nil
}

// replayConn returns head before reading from Conn.
type replayConn struct {
	net.Conn
	head []byte
}

// SetReadLowWater passes a low-water mark to Conn, less the bytes of head
// still to read (lowwater.Setter).
func (c *replayConn) SetReadLowWater(n int) error {
	return lowwater.Set(c.Conn, n-len(c.head))
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(p, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// ourHandshake is the BitTorrent handshake we send.
func (w *wire) ourHandshake() peerwire.Handshake {
	return peerwire.Handshake{Reserved: peerwire.DefaultReserved(), InfoHash: w.cfg.InfoHash, PeerID: w.cfg.PeerID}
}

// sentInPayload reports whether our handshake already went on an
// outgoing connection: in the initial payload of its MSE handshake (an
// outgoing connection is an *mse.Conn only when dialConn made it).
func sentInPayload(c net.Conn) bool {
	_, ok := c.(*mse.Conn)
	return ok
}

// isRC4 reports whether c's stream is RC4-encrypted (MSE).
func isRC4(c net.Conn) bool {
	if sc, ok := c.(*slotConn); ok {
		c = sc.Conn
	}
	if pc, ok := c.(*peerwire.PrefixConn); ok { // adopted (Adopt)
		c = pc.Conn
	}
	mc, ok := c.(*mse.Conn)
	return ok && mc.Method() == mse.RC4
}
