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
)

// ourMetadataID is the extended message ID we ask peers to use for
// ut_metadata messages sent to us.
const ourMetadataID = 1

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
}

// event is what a connection reports to the fetcher.
type event struct {
	c   *conn
	typ int // evReady, evMsg, evGone
	msg peerwire.MetadataMsg
	err error
}

const (
	evReady = iota
	evMsg
	evGone
)

// dialPeer connects to addr, exchanges handshakes and reports evReady (or
// evGone) on events, then reads until the connection fails.
func (f *fetcher) dialPeer(ctx context.Context, addr netip.AddrPort) {
	c := &conn{addr: addr, reqs: make(chan int, maxAsk), asked: map[int]bool{}}
	report := func(e event) bool {
		e.c = c
		select {
		case f.events <- e:
			return true
		case <-ctx.Done():
			return false
		}
	}
	d := net.Dialer{Timeout: f.cfg.DialTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		report(event{typ: evGone, err: err})
		return
	}
	c.nc = nc
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	defer nc.Close()
	r, err := f.greet(c)
	if err == nil {
		if !report(event{typ: evReady}) {
			return
		}
		go f.writeLoop(ctx, c)
		err = f.readLoop(c, r, report)
	}
	report(event{typ: evGone, err: err})
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
		return nil, fmt.Errorf("peer answered for info-hash %x", their.InfoHash)
	}
	if !their.SupportsExtensions() {
		return nil, errNoMetadata
	}
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
// the connection fails.
func (f *fetcher) readLoop(c *conn, r *peerwire.Reader, report func(event) bool) error {
	for {
		c.nc.SetReadDeadline(time.Now().Add(f.cfg.PeerTimeout))
		m, err := r.ReadMessage()
		if err != nil {
			return err
		}
		if m.KeepAlive || m.ID != peerwire.Extended || m.ExtID != ourMetadataID {
			continue
		}
		mm, err := peerwire.ParseMetadataMsg(m.ExtPayload)
		if err != nil {
			return err
		}
		if mm.Type == peerwire.MetadataRequest {
			continue // we have nothing to give; the writer is busy with ours
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
	w := peerwire.NewWriter(c.nc)
	w.SetWriteTimeout(f.cfg.PeerTimeout)
	for {
		select {
		case <-ctx.Done():
			return
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
