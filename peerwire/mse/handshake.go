package mse

import (
	"bytes"
	"crypto/rc4"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Method is a crypto_provide / crypto_select bit set.
type Method uint32

// The methods of MSE: after the handshake the stream is plaintext or RC4.
const (
	Plaintext Method = 0x01
	RC4       Method = 0x02
)

func (m Method) String() string {
	switch m {
	case Plaintext:
		return "plaintext"
	case RC4:
		return "rc4"
	case Plaintext | RC4:
		return "plaintext|rc4"
	}
	return fmt.Sprintf("method(%#x)", uint32(m))
}

// Wire bounds of the handshake.
const (
	maxPad = 512
	vcLen  = 8
	// MaxInitialPayload bounds the initial payload (IA) either side
	// accepts; a BitTorrent handshake, what clients put there, is 68.
	MaxInitialPayload = 1024
	// reqSyncWindow is where the responder looks for HASH('req1', S)
	// after the initiator's key: PadA and the hash.
	reqSyncWindow = maxPad + 20
	// vcSyncWindow is where the initiator looks for ENCRYPT(VC) after
	// the responder's key: PadB and the constant.
	vcSyncWindow = maxPad + vcLen
)

// Errors of a handshake that cannot go on; the connection must be closed.
var (
	ErrSync          = errors.New("mse: synchronisation hash not found within the pad window (not an MSE peer)")
	ErrUnknownSKey   = errors.New("mse: peer asked for a torrent we do not serve")
	ErrBadVC         = errors.New("mse: bad verification constant")
	ErrNoMethod      = errors.New("mse: no crypto method in common with the peer")
	ErrBadSelect     = errors.New("mse: peer selected a crypto method we did not provide")
	ErrPadTooLong    = errors.New("mse: pad longer than 512 bytes")
	ErrPayloadTooBig = errors.New("mse: initial payload too large")
)

// stream reads the handshake: bytes read past what was consumed (while
// scanning for a synchronisation point) are kept in head and read first.
type stream struct {
	r    io.Reader
	head []byte
}

func (s *stream) readFull(p []byte) error {
	n := copy(p, s.head)
	s.head = s.head[n:]
	if n < len(p) {
		if _, err := io.ReadFull(s.r, p[n:]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// decrypt reads len(p) bytes into p and decrypts them with c.
func (s *stream) decrypt(c *rc4.Cipher, p []byte) error {
	if err := s.readFull(p); err != nil {
		return err
	}
	c.XORKeyStream(p, p)
	return nil
}

// syncOn consumes bytes up to and including the first occurrence of
// mark, which must end within window bytes; the bytes after it stay in
// head.
func (s *stream) syncOn(mark []byte, window int) error {
	buf := make([]byte, 0, window)
	buf = append(buf, s.head...)
	s.head = nil
	for {
		if i := bytes.Index(buf, mark); i >= 0 {
			s.head = buf[i+len(mark):]
			return nil
		}
		if len(buf) >= window {
			return ErrSync
		}
		n, err := s.r.Read(buf[len(buf):window])
		buf = buf[:len(buf)+n]
		if err != nil && n == 0 {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("%w: %w", ErrSync, io.ErrUnexpectedEOF)
			}
			return err
		}
	}
}

// pads chooses pad lengths; tests fix them.
type pads func(rnd io.Reader) (int, error)

// randomPad is a random length in 0..512.
func randomPad(rnd io.Reader) (int, error) {
	var b [2]byte
	if _, err := io.ReadFull(rnd, b[:]); err != nil {
		return 0, err
	}
	return int(binary.BigEndian.Uint16(b[:])) % (maxPad + 1), nil
}

func noPad(io.Reader) (int, error) { return 0, nil }

// appendPad appends n random bytes.
func appendPad(b []byte, rnd io.Reader, n int) ([]byte, error) {
	start := len(b)
	b = append(b, make([]byte, n)...)
	_, err := io.ReadFull(rnd, b[start:])
	return b, err
}

// result is what a handshake leaves to the Conn.
type result struct {
	method   Method
	enc, dec *rc4.Cipher // nil when method is Plaintext
	head     []byte      // raw bytes read past the handshake
	ia       []byte      // the initiator's initial payload (responder), decrypted
	skey     [20]byte
}
