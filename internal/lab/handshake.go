package lab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"
)

// PeerIDAt connects from h to the BitTorrent peer at addr, sends a BEP 3
// handshake for ih with peerID and returns the peer id of the peer's
// reply: the identity it presents at that address. It closes the
// connection right after.
func PeerIDAt(ctx context.Context, h Host, addr string, ih, peerID [20]byte) ([20]byte, error) {
	var id [20]byte
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := h.DialContext(ctx, "tcp", addr)
	if err != nil {
		return id, fmt.Errorf("lab: handshake with %s: %w", addr, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	const pstr = "BitTorrent protocol"
	hs := append([]byte{byte(len(pstr))}, pstr...)
	hs = append(hs, make([]byte, 8)...)
	hs = append(hs, ih[:]...)
	hs = append(hs, peerID[:]...)
	if _, err := c.Write(hs); err != nil {
		return id, fmt.Errorf("lab: handshake with %s: %w", addr, err)
	}
	reply := make([]byte, len(hs))
	if _, err := io.ReadFull(c, reply); err != nil {
		return id, fmt.Errorf("lab: handshake with %s: %w", addr, err)
	}
	if !bytes.Equal(reply[:20], hs[:20]) || !bytes.Equal(reply[28:48], ih[:]) {
		return id, fmt.Errorf("lab: handshake with %s: unexpected reply %q", addr, reply[:48])
	}
	copy(id[:], reply[48:])
	return id, nil
}
