package peerwire

import (
	"fmt"
	"io"
)

// Pstr is the BEP 3 protocol string.
const Pstr = "BitTorrent protocol"

// HandshakeLen is the length in bytes of a BEP 3 handshake.
const HandshakeLen = 1 + len(Pstr) + 8 + 20 + 20

// Handshake is the BEP 3 handshake: reserved bits, info-hash and peer id.
type Handshake struct {
	Reserved [8]byte
	InfoHash [20]byte
	PeerID   [20]byte
}

// Reserved bits (byte index, mask).
const (
	extensionByte = 5
	extensionBit  = 0x10 // BEP 10 extension protocol
	fastByte      = 7
	fastBit       = 0x04 // BEP 6 fast extension
	dhtBit        = 0x01 // BEP 5 DHT (byte 7); we never set it
)

// SupportsExtensions reports whether the BEP 10 extension protocol bit is set.
func (h Handshake) SupportsExtensions() bool { return h.Reserved[extensionByte]&extensionBit != 0 }

// SupportsFast reports whether the BEP 6 fast extension bit is set.
func (h Handshake) SupportsFast() bool { return h.Reserved[fastByte]&fastBit != 0 }

// DefaultReserved returns reserved bytes with the extension protocol and
// fast extension bits set (and nothing else: no DHT).
func DefaultReserved() [8]byte {
	var r [8]byte
	r[extensionByte] |= extensionBit
	r[fastByte] |= fastBit
	return r
}

// AppendHandshake appends the 68-byte encoding of h to dst.
func AppendHandshake(dst []byte, h Handshake) []byte {
	dst = append(dst, byte(len(Pstr)))
	dst = append(dst, Pstr...)
	dst = append(dst, h.Reserved[:]...)
	dst = append(dst, h.InfoHash[:]...)
	return append(dst, h.PeerID[:]...)
}

// WriteHandshake writes h to w in a single Write call.
func WriteHandshake(w io.Writer, h Handshake) error {
	var buf [HandshakeLen]byte
	if _, err := w.Write(AppendHandshake(buf[:0], h)); err != nil {
		return fmt.Errorf("peerwire: write handshake: %w", err)
	}
	return nil
}

// ReadHandshake reads exactly 68 bytes from r (it never reads past the
// handshake, so r may be the raw connection) and checks the protocol string
// strictly. Errors: ErrBadHandshake (wrong pstrlen/pstr), io.EOF (nothing
// received) or io.ErrUnexpectedEOF (short handshake), wrapped.
func ReadHandshake(r io.Reader) (Handshake, error) {
	var h Handshake
	var buf [HandshakeLen]byte
	// Read the protocol string first so that a non-BitTorrent peer is
	// rejected without waiting for 68 bytes.
	if _, err := io.ReadFull(r, buf[:20]); err != nil {
		return h, fmt.Errorf("peerwire: read handshake: %w", err)
	}
	if err := checkPstr(buf[:20]); err != nil {
		return h, err
	}
	if _, err := io.ReadFull(r, buf[20:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return h, fmt.Errorf("peerwire: read handshake: %w", err)
	}
	return parseHandshakeTail(buf[20:]), nil
}

// ParseHandshake decodes a 68-byte handshake held in b (extra bytes are an
// error).
func ParseHandshake(b []byte) (Handshake, error) {
	if len(b) != HandshakeLen {
		return Handshake{}, fmt.Errorf("%w: length %d, want %d", ErrBadHandshake, len(b), HandshakeLen)
	}
	if err := checkPstr(b[:20]); err != nil {
		return Handshake{}, err
	}
	return parseHandshakeTail(b[20:]), nil
}

func checkPstr(b []byte) error {
	if b[0] != byte(len(Pstr)) {
		return fmt.Errorf("%w: pstrlen %d", ErrBadHandshake, b[0])
	}
	if string(b[1:20]) != Pstr {
		return fmt.Errorf("%w: pstr %q", ErrBadHandshake, b[1:20])
	}
	return nil
}

func parseHandshakeTail(b []byte) Handshake {
	var h Handshake
	copy(h.Reserved[:], b[0:8])
	copy(h.InfoHash[:], b[8:28])
	copy(h.PeerID[:], b[28:48])
	return h
}
