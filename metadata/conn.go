package metadata

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"flotilla/peerwire"
	"flotilla/peerwire/mse"
)

// ourMetadataID is the extended message ID we ask peers to use for
// ut_metadata messages sent to us: the one the download's swarm
// (peerswarm) gives ut_metadata too, so that a reply still on its way
// when a connection is handed over (FetchKeep) reaches the swarm as the
// ut_metadata data it ignores, not as another extension's message.
const ourMetadataID = 2

// maxTape bounds what a connection records of the peer's messages for
// its handover (its bitfield, haves, extension handshake): a peer that
// sends more is not handed over.
const maxTape = 256 << 10

var errNoMetadata = errors.New("peer does not offer ut_metadata")

// conn is one peer connection. Its reader reports to the fetcher's events
// channel; its writer sends the piece requests the fetcher queues on reqs.
type conn struct {
	addr   netip.AddrPort
	nc     net.Conn
	reqs   chan int // pieces to request; the fetcher never queues more than maxAsk
	extID  uint8    // the peer's ID for ut_metadata
	size   int      // the peer's metadata_size
	asked  map[int]bool
	solo   [][]byte // the peer's own copy, after a failed shared assembly
	closed bool

	// For the handover (FetchKeep). The reader and the writer goroutines
	// own theirs, fast, tape and r until they end.
	theirs    peerwire.Handshake
	encrypted bool          // the stream runs RC4 (MSE)
	tape      []byte        // the peer's messages the download's swarm must see, re-encoded
	full      bool          // the tape overflowed: not handed over
	keep      chan struct{} // closed by the fetcher: stop and hand the connection over
	// interest asks the writer to send Interested: the peer has pieces
	// (FetchKeep), so that its unchoke is under way when the download
	// adopts the connection. wanted: asked already (reader-owned).
	interest chan struct{}
	wanted   bool
	wdone    chan struct{} // closed when the writer goroutine ended
}

// event is what a connection reports to the fetcher.
type event struct {
	c   *conn
	typ int // evReady, evMsg, evGone
	msg peerwire.MetadataMsg
	err error
	// kept, with evGone: the connection, handed over (FetchKeep).
	kept *peerwire.Handover
}

const (
	evReady = iota
	evMsg
	evGone
)

// dialPeer connects to addr, exchanges handshakes and reports evReady (or
// evGone) on events, then reads until the connection fails.
func (f *fetcher) dialPeer(ctx context.Context, addr netip.AddrPort) {
	c := &conn{addr: addr, reqs: make(chan int, maxAsk), asked: map[int]bool{},
		keep: make(chan struct{}), wdone: make(chan struct{}), interest: make(chan struct{}, 1)}
	report := func(e event) bool {
		e.c = c
		select {
		case f.events <- e:
			return true
		case <-ctx.Done():
			return false
		}
	}
	r, stop, err := f.connect(ctx, c)
	if err != nil {
		report(event{typ: evGone, err: err})
		return
	}
	nc := c.nc
	defer stop()
	if !report(event{typ: evReady}) {
		nc.Close()
		return
	}
	go f.writeLoop(ctx, c)
	err = f.readLoop(c, r, report)
	if err == errKept {
		<-c.wdone // keep stops it too: nothing else writes on nc from here
		if h, herr := c.handover(r); herr != nil {
			err = herr
		} else if stop() { // ctx did not close the connection meanwhile
			if !report(event{typ: evGone, kept: h}) {
				nc.Close()
			}
			return
		}
	}
	nc.Close()
	report(event{typ: evGone, err: err})
}

// errWrongHash: the peer answered for another torrent.
var errWrongHash = errors.New("peer answered for another info-hash")

// connect dials c.addr and greets the peer per Config.Encryption: off,
// in plaintext; require, with MSE (RC4); prefer, in plaintext first (as
// fast as it gets: no key exchange, no extra round trip) and with MSE
// when a peer that took the connection dropped the plaintext handshake
// (one that requires encryption). The connection is closed when ctx
// ends, until stop is called.
func (f *fetcher) connect(ctx context.Context, c *conn) (r *peerwire.Reader, stop func() bool, err error) {
	modes := []bool{false} // encrypted?
	switch f.cfg.Encryption {
	case mse.Require:
		modes = []bool{true}
	case mse.Prefer:
		modes = []bool{false, true}
	}
	for _, enc := range modes {
		d := net.Dialer{Timeout: f.cfg.DialTimeout}
		nc, derr := d.DialContext(ctx, "tcp", c.addr.String())
		if derr != nil {
			return nil, nil, derr // unreachable: no second try
		}
		stop = context.AfterFunc(ctx, func() { nc.Close() })
		c.nc, c.encrypted = nc, false
		if enc {
			mc, merr := mse.Initiate(nc, f.hash, f.cfg.Encryption.Provide(), nil, time.Now().Add(f.cfg.PeerTimeout))
			if merr != nil {
				stop()
				nc.Close()
				err = fmt.Errorf("encrypted handshake: %w", merr)
				continue
			}
			c.nc, c.encrypted = mc, mc.Method() == mse.RC4
		}
		if r, err = f.greet(c); err == nil {
			return r, stop, nil
		}
		stop()
		nc.Close()
		if errors.Is(err, errNoMetadata) || errors.Is(err, errWrongHash) {
			break
		}
	}
	return nil, nil, err
}

// errKept ends a reader stopped for the handover.
var errKept = errors.New("connection kept for the download")

// handover is c for the download's swarm: the peer's messages we
// recorded and those read but not decoded come first on its Conn.
func (c *conn) handover(r *peerwire.Reader) (*peerwire.Handover, error) {
	if c.full {
		return nil, errors.New("peer sent too much to hand the connection over")
	}
	rest, err := r.Detach()
	if err != nil {
		return nil, err
	}
	c.nc.SetDeadline(time.Time{})
	return &peerwire.Handover{Conn: &peerwire.PrefixConn{Conn: c.nc, Head: append(c.tape, rest...)},
		Addr: c.addr, Outgoing: true, Encrypted: c.encrypted, Theirs: c.theirs, Greeted: true}, nil
}

// record keeps a copy of m for the handover, within maxTape; the first
// message saying the peer has pieces gets our Interested sent (keep:
// FetchKeep only, since a plain Fetch downloads nothing).
func (c *conn) record(m peerwire.Message, keep bool) {
	if m.KeepAlive || c.full {
		return
	}
	if keep && !c.wanted && hasPieces(m) {
		c.wanted = true
		c.interest <- struct{}{} // never blocks: sent once into a buffer of one
	}
	if len(c.tape) > maxTape {
		c.full, c.tape = true, nil
		return
	}
	c.tape = peerwire.AppendMessage(c.tape, m)
}

// greet exchanges the BEP 3 and BEP 10 handshakes and reads until the
// peer's extension handshake, which must offer ut_metadata.
func (f *fetcher) greet(c *conn) (*peerwire.Reader, error) {
	c.nc.SetDeadline(time.Now().Add(f.cfg.PeerTimeout))
	hs := peerwire.Handshake{Reserved: peerwire.DefaultReserved(), InfoHash: f.hash, PeerID: f.cfg.PeerID}
	if err := peerwire.WriteHandshake(c.nc, hs); err != nil {
		return nil, err
	}
	their, err := peerwire.ReadHandshake(c.nc)
	if err != nil {
		return nil, err
	}
	if their.InfoHash != f.hash {
		return nil, fmt.Errorf("%w: %x", errWrongHash, their.InfoHash)
	}
	if !their.SupportsExtensions() {
		return nil, errNoMetadata
	}
	c.theirs = their
	w := peerwire.NewWriter(c.nc)
	w.WriteExtHandshake(peerwire.ExtHandshake{M: map[string]int{peerwire.ExtMetadataName: ourMetadataID}, V: "Flotilla"})
	if their.SupportsFast() {
		w.WriteSimple(peerwire.HaveNone)
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	r := peerwire.NewReader(c.nc, peerwire.Limits{MaxMessage: peerwire.MetadataPieceSize + 1024})
	for {
		m, err := r.ReadMessage()
		if err != nil {
			return nil, err
		}
		c.record(m, f.keep)
		if m.KeepAlive || m.ID != peerwire.Extended || m.ExtID != peerwire.ExtHandshakeID {
			continue
		}
		h, err := peerwire.ParseExtHandshake(m.ExtPayload)
		if err != nil {
			return nil, err
		}
		id := h.M[peerwire.ExtMetadataName]
		if id == 0 {
			return nil, errNoMetadata
		}
		c.extID, c.size = uint8(id), h.MetadataSize
		return r, nil
	}
}

// readLoop passes the peer's ut_metadata messages to the fetcher until
// the connection fails, or returns errKept once the fetcher asked for the
// connection (keep) and interrupted the read; the peer's other messages
// are recorded for the handover.
func (f *fetcher) readLoop(c *conn, r *peerwire.Reader, report func(event) bool) error {
	for {
		c.nc.SetReadDeadline(time.Now().Add(f.cfg.PeerTimeout))
		select {
		case <-c.keep:
			return errKept
		default:
		}
		m, err := r.ReadMessage()
		if err != nil {
			select {
			case <-c.keep:
				return errKept
			default:
			}
			return err
		}
		if m.KeepAlive || m.ID != peerwire.Extended || m.ExtID != ourMetadataID {
			c.record(m, f.keep)
			continue
		}
		mm, err := peerwire.ParseMetadataMsg(m.ExtPayload)
		if err != nil {
			return err
		}
		if mm.Type == peerwire.MetadataRequest {
			c.record(m, f.keep) // the download's swarm answers it
			continue            // we have nothing to give; the writer is busy with ours
		}
		mm.Data = bytes.Clone(mm.Data)
		if !report(event{typ: evMsg, msg: mm}) {
			return context.Canceled
		}
	}
}

// writeLoop sends the requests the fetcher queues, until ctx ends or the
// fetcher closes reqs.
func (f *fetcher) writeLoop(ctx context.Context, c *conn) {
	defer close(c.wdone)
	w := peerwire.NewWriter(c.nc)
	w.SetWriteTimeout(f.cfg.PeerTimeout)
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.keep:
			return
		case <-c.interest:
			if w.WriteSimple(peerwire.Interested) != nil || w.Flush() != nil {
				c.nc.Close()
				return
			}
		case p, ok := <-c.reqs:
			if !ok {
				return
			}
			req := peerwire.MetadataMsg{Type: peerwire.MetadataRequest, Piece: p}
			if w.WriteExtended(c.extID, req.AppendTo(nil)) != nil || w.Flush() != nil {
				c.nc.Close()
				return
			}
		}
	}
}

// hasPieces reports whether m says the peer has at least one piece.
func hasPieces(m peerwire.Message) bool {
	switch m.ID {
	case peerwire.HaveAll, peerwire.Have:
		return true
	case peerwire.BitfieldMsg:
		for _, b := range m.Bitfield {
			if b != 0 {
				return true
			}
		}
	}
	return false
}
