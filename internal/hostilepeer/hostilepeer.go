// Package hostilepeer is a misbehaving BitTorrent peer for tests: a real
// TCP peer, dialling from a loopback address of the test's choosing, that
// runs a script — floods, oversized and malformed messages, lies, garbage
// data, unrequested blocks, a slowloris handshake, connection storms.
//
// Every function works on real sockets and is safe to run from many
// goroutines at once (each Conn belongs to one goroutine). Nothing here
// retries: a script stops at the first error, which usually means the
// peer under test closed the connection (what most attacks should get).
package hostilepeer

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"flotilla/internal/bitfield"
	"flotilla/peerwire"
)

// Torrent is what a hostile peer knows of the torrent under attack.
type Torrent struct {
	InfoHash    [20]byte
	NumPieces   int
	PieceLength int64
	Length      int64
}

// PieceLen is the length of piece i.
func (t Torrent) PieceLen(i int) int64 {
	if i == t.NumPieces-1 {
		return t.Length - int64(i)*t.PieceLength
	}
	return t.PieceLength
}

// Conn is a connection whose handshake is done.
type Conn struct {
	net.Conn
	T Torrent
	r *peerwire.Reader // made on first use: a squatter never needs its buffer
}

// Reader is the connection's message reader.
func (c *Conn) Reader() *peerwire.Reader {
	if c.r == nil {
		c.r = peerwire.NewReader(c.Conn, peerwire.DefaultLimits(c.T.NumPieces, c.T.PieceLength, c.T.Length))
	}
	return c.r
}

// Options tune Dial.
type Options struct {
	// Reserved are the handshake's reserved bytes (zero: peerwire.DefaultReserved,
	// with the fast and extension bits).
	Reserved [8]byte
	// PeerID (zero: derived from the local address).
	PeerID [20]byte
	// Timeout bounds connect plus handshake (zero: 10 s).
	Timeout time.Duration
}

// Dial connects to addr from localIP, sends the handshake and reads the
// answer.
func Dial(ctx context.Context, localIP, addr string, t Torrent, o Options) (*Conn, error) {
	c, err := Connect(ctx, localIP, addr, o.Timeout)
	if err != nil {
		return nil, err
	}
	if o.Reserved == ([8]byte{}) {
		o.Reserved = peerwire.DefaultReserved()
	}
	if o.PeerID == ([20]byte{}) {
		copy(o.PeerID[:], "-HOSTIL-")
		rand.Read(o.PeerID[8:]) // distinct per connection: a swarm refuses a duplicate id
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	c.SetDeadline(time.Now().Add(timeout))
	if err := peerwire.WriteHandshake(c, peerwire.Handshake{Reserved: o.Reserved, InfoHash: t.InfoHash, PeerID: o.PeerID}); err != nil {
		c.Close()
		return nil, fmt.Errorf("hostilepeer: send handshake: %w", err)
	}
	if _, err := peerwire.ReadHandshake(c); err != nil {
		c.Close()
		return nil, fmt.Errorf("hostilepeer: read handshake: %w", err)
	}
	c.SetDeadline(time.Time{})
	return &Conn{Conn: c, T: t}, nil
}

// Connect opens a bare TCP connection from localIP (no handshake).
func Connect(ctx context.Context, localIP, addr string, timeout time.Duration) (net.Conn, error) {
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}, Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("hostilepeer: connect from %s: %w", localIP, err)
	}
	return c, nil
}

// Send writes messages in one write.
func (c *Conn) Send(ms ...peerwire.Message) error {
	var b []byte
	for _, m := range ms {
		b = peerwire.AppendMessage(b, m)
	}
	_, err := c.Write(b)
	return err
}

// SendRaw writes a length prefix, an ID and a payload exactly as given,
// whatever they say: for malformed messages.
func (c *Conn) SendRaw(length uint32, id byte, payload []byte) error {
	b := binary.BigEndian.AppendUint32(nil, length)
	b = append(b, id)
	_, err := c.Write(append(b, payload...))
	return err
}

// Drain reads and discards bytes (in a small buffer, unparsed) until the
// connection ends or ctx is done, and reports how the connection ended: a
// net timeout error means ctx ended first.
func (c *Conn) Drain(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()
	var buf [512]byte
	for {
		if _, err := c.Conn.Read(buf[:]); err != nil {
			return err
		}
	}
}

// WaitUnchoke reads until an Unchoke arrives.
func (c *Conn) WaitUnchoke(timeout time.Duration) error {
	c.SetReadDeadline(time.Now().Add(timeout))
	defer c.SetReadDeadline(time.Time{})
	for {
		m, err := c.Reader().ReadMessage()
		if err != nil {
			return err
		}
		if !m.KeepAlive && m.ID == peerwire.Unchoke {
			return nil
		}
	}
}

// AllBits is a bitfield with every piece set.
func (t Torrent) AllBits() []byte {
	return bitfield.Full(t.NumPieces)
}

// FloodRequests writes n valid requests for full-size blocks, cycling over
// the torrent, in large writes and without reading, until done, the
// connection fails or ctx ends. It returns how many were written.
func (c *Conn) FloodRequests(ctx context.Context, n int) int {
	per := int(c.T.PieceLength / peerwire.BlockSize)
	full := c.T.NumPieces - 1 // the last piece may be short
	if per == 0 || full == 0 {
		return 0
	}
	buf := make([]byte, 0, 64<<10)
	sent, queued := 0, 0
	for i := 0; i < n && ctx.Err() == nil; i++ {
		piece := (i / per) % full
		begin := (i % per) * peerwire.BlockSize
		buf = peerwire.AppendMessage(buf, peerwire.Message{ID: peerwire.Request, Index: uint32(piece), Begin: uint32(begin), Length: peerwire.BlockSize})
		queued++
		if len(buf) >= 60<<10 || i == n-1 {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write(buf); err != nil {
				return sent
			}
			sent += queued
			buf, queued = buf[:0], 0
		}
	}
	return sent
}

// ServeGarbage answers every request with a block of junk (the liar's
// script) until the connection ends or ctx is done; it first claims every
// piece and unchokes.
func (c *Conn) ServeGarbage(ctx context.Context) error {
	if err := c.Send(peerwire.Message{ID: peerwire.BitfieldMsg, Bitfield: c.T.AllBits()}, peerwire.Message{ID: peerwire.Unchoke}); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()
	junk := make([]byte, peerwire.MaxAcceptedBlock)
	for i := range junk {
		junk[i] = byte(i*7 + 1)
	}
	for {
		m, err := c.Reader().ReadMessage()
		if err != nil {
			return err
		}
		if !m.KeepAlive && m.ID == peerwire.Request && int(m.Length) <= len(junk) {
			if err := c.Send(peerwire.Message{ID: peerwire.Piece, Index: m.Index, Begin: m.Begin, Block: junk[:m.Length]}); err != nil {
				return err
			}
		}
	}
}

// SprayBlocks sends n blocks nobody requested, spread over the torrent.
func (c *Conn) SprayBlocks(n int) error {
	junk := make([]byte, peerwire.BlockSize)
	per := int(c.T.PieceLength / peerwire.BlockSize)
	full := c.T.NumPieces - 1
	if per == 0 || full == 0 {
		return errors.New("hostilepeer: torrent too small to spray blocks")
	}
	var b []byte
	for i := range n {
		b = peerwire.AppendMessage(b, peerwire.Message{ID: peerwire.Piece, Index: uint32((i / per) % full), Begin: uint32((i % per) * peerwire.BlockSize), Block: junk})
	}
	_, err := c.Write(b)
	return err
}

// Slowloris opens a connection from localIP and sends a valid handshake one
// byte every interval until it is closed by the other side, ctx ends or
// the handshake is complete. It returns how many bytes it sent.
func Slowloris(ctx context.Context, localIP, addr string, t Torrent, interval time.Duration) (int, error) {
	c, err := Connect(ctx, localIP, addr, 0)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	var pid [20]byte
	copy(pid[:], "-SLOWLO-"+localIP)
	hs := peerwire.AppendHandshake(nil, peerwire.Handshake{Reserved: peerwire.DefaultReserved(), InfoHash: t.InfoHash, PeerID: pid})
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := range hs {
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(hs[i : i+1]); err != nil {
			return i, err
		}
		select {
		case <-ctx.Done():
			return i + 1, ctx.Err()
		case <-tick.C:
		}
	}
	return len(hs), nil
}

// Storm opens n connections to addr at once, spread over the local
// addresses ips (round robin); each sends pre (if any) and holds the
// connection until the other side closes it or ctx ends. Storm returns
// once every connection attempt has succeeded or failed, with how many
// connected, and a wait function that returns once every connection has
// ended.
func Storm(ctx context.Context, ips []string, addr string, n int, pre []byte) (connected int, wait func()) {
	var dialed, held sync.WaitGroup
	var mu sync.Mutex
	for i := range n {
		dialed.Add(1)
		held.Add(1)
		go func() {
			defer held.Done()
			c, err := Connect(ctx, ips[i%len(ips)], addr, 5*time.Second)
			if err != nil {
				dialed.Done()
				return
			}
			defer c.Close()
			mu.Lock()
			connected++
			mu.Unlock()
			if len(pre) > 0 {
				c.Write(pre)
			}
			dialed.Done()
			stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
			defer stop()
			buf := make([]byte, 512)
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	dialed.Wait()
	mu.Lock()
	defer mu.Unlock()
	return connected, held.Wait
}

// Malformed is one message that breaks the wire protocol.
type Malformed struct {
	Name    string
	Length  uint32 // the length prefix as sent
	ID      byte
	Payload []byte // sent as is (may be shorter than Length says)
}

// MalformedMessages returns, for every message type, an oversized one
// (a length prefix far beyond any legal message) and one of a wrong
// length, plus an unknown ID over the cap, for torrent t.
func MalformedMessages(t Torrent) []Malformed {
	var out []Malformed
	ids := []peerwire.MsgID{peerwire.Choke, peerwire.Unchoke, peerwire.Interested, peerwire.NotInterested,
		peerwire.Have, peerwire.BitfieldMsg, peerwire.Request, peerwire.Piece, peerwire.Cancel, peerwire.Port,
		peerwire.Suggest, peerwire.HaveAll, peerwire.HaveNone, peerwire.Reject, peerwire.AllowedFast, peerwire.Extended}
	for _, id := range ids {
		out = append(out, Malformed{Name: fmt.Sprintf("%v oversized", id), Length: 1 << 30, ID: byte(id), Payload: make([]byte, 64)})
		// A wrong length: one byte more than the longest legal form.
		lim := peerwire.DefaultLimits(t.NumPieces, t.PieceLength, t.Length)
		n := lim.MaxLength(id)
		if id == peerwire.Extended {
			n = 1 << 20 // over the swarm's 64 KiB cap but under the reader's default
			out = append(out, Malformed{Name: "extended over 64 KiB", Length: n + 1, ID: byte(id), Payload: make([]byte, n)})
			continue
		}
		out = append(out, Malformed{Name: fmt.Sprintf("%v wrong length", id), Length: n + 1, ID: byte(id), Payload: make([]byte, n)})
	}
	out = append(out, Malformed{Name: "unknown id oversized", Length: 2 << 20, ID: 99, Payload: make([]byte, 64)})
	// Messages well formed but naming pieces that do not exist.
	bad := uint32(t.NumPieces + 10)
	out = append(out,
		Malformed{Name: "have for a piece that does not exist", Length: 5, ID: byte(peerwire.Have), Payload: binary.BigEndian.AppendUint32(nil, bad)},
		Malformed{Name: "request for a piece that does not exist", Length: 13, ID: byte(peerwire.Request),
			Payload: binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, bad), 0), peerwire.BlockSize)},
	)
	if t.NumPieces%8 != 0 {
		bf := t.AllBits()
		bf[len(bf)-1] = 0xff
		out = append(out, Malformed{Name: "bitfield with pieces past the end", Length: uint32(1 + len(bf)), ID: byte(peerwire.BitfieldMsg), Payload: bf})
	}
	long := append(t.AllBits(), 0xff)
	out = append(out, Malformed{Name: "bitfield longer than the torrent", Length: uint32(1 + len(long)), ID: byte(peerwire.BitfieldMsg), Payload: long})
	return out
}
