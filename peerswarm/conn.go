package peerswarm

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"flotilla/internal/lowwater"
	"flotilla/peerwire"
	"flotilla/peerwire/mse"
)

// Errors that close a connection before it is registered.
var (
	ErrWrongInfoHash = errors.New("swarm: peer handshake for another torrent")
	ErrOwnPeerID     = errors.New("swarm: connected to ourselves")
	ErrBanned        = errors.New("swarm: peer is banned")
)

// connHandle is what the owner goroutine holds of a live connection; the
// reader and writer goroutines hold it too. Only the fields documented as
// shared are touched outside the owner.
type connHandle struct {
	key  peerKey
	gen  uint32
	c    net.Conn
	addr netip.AddrPort

	quit      chan struct{} // closed by the owner: writer stops
	closeOnce sync.Once

	// Shared with the writer goroutine.
	out      outQueue
	uploaded atomic.Int64 // payload bytes sent
	lastRead atomic.Int64 // UnixNano of the last message read (set by the reader)
}

// Bounds of a connection's outbound queue. Piece payloads are read from
// Storage by the writer and are not counted in bytes (queued uploads are
// bounded by MaxUploadQueue); everything else is. A peer that lets its
// queue reach either bound has stopped reading while it keeps us writing:
// it is dropped and banned (errOutQueueFull).
const (
	maxOutMessages = 8192
	maxOutBytes    = 2 << 20
)

// outQueue is a connection's outbound mailbox: the owner appends messages
// under mu and wakes the writer, which drains everything in one go. This
// keeps the owner from ever blocking on a slow peer.
type outQueue struct {
	mu      sync.Mutex
	q       []peerwire.Message
	uploads int  // queued piece messages (uploads) not yet written
	rejects int  // queued rejects
	bytes   int  // wire size of the queued messages, piece payloads excluded
	full    bool // a push was refused: the connection must be dropped
	wake    chan struct{}
}

// queuedSize is what m costs in the queue's byte bound.
func queuedSize(m peerwire.Message) int {
	switch m.ID {
	case peerwire.Piece:
		return 13
	case peerwire.BitfieldMsg:
		return 5 + len(m.Bitfield)
	case peerwire.Extended:
		return 6 + len(m.ExtPayload)
	}
	return 17
}

// push queues ms, or refuses all of them (and marks the queue full) if they
// would take it over maxOutMessages or maxOutBytes.
func (o *outQueue) push(ms ...peerwire.Message) bool {
	o.mu.Lock()
	size := 0
	for _, m := range ms {
		size += queuedSize(m)
	}
	if o.full || len(o.q)+len(ms) > maxOutMessages || o.bytes+size > maxOutBytes {
		o.full = true
		o.mu.Unlock()
		return false
	}
	for _, m := range ms {
		if m.KeepAlive {
			continue
		}
		switch m.ID {
		case peerwire.Piece:
			o.uploads++
		case peerwire.Reject:
			o.rejects++
		}
	}
	o.bytes += size
	o.q = append(o.q, ms...)
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return true
}

// take moves every queued message to batch (for the writer).
func (o *outQueue) take(batch []peerwire.Message) []peerwire.Message {
	o.mu.Lock()
	batch = append(batch, o.q...)
	clear(o.q)
	if cap(o.q) > 1024 {
		o.q = nil // do not keep a flood's backing array
	} else {
		o.q = o.q[:0]
	}
	o.bytes, o.rejects = 0, 0
	o.mu.Unlock()
	return batch
}

// isFull reports whether a push was refused.
func (o *outQueue) isFull() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.full
}

// dropUploads removes the queued uploads drop selects and returns them.
func (o *outQueue) dropUploads(drop func(m peerwire.Message) bool) []peerwire.Message {
	o.mu.Lock()
	defer o.mu.Unlock()
	var dropped []peerwire.Message
	out := o.q[:0]
	for _, m := range o.q {
		if m.ID == peerwire.Piece && !m.KeepAlive && drop(m) {
			dropped = append(dropped, m)
			o.uploads--
			o.bytes -= queuedSize(m)
			continue
		}
		out = append(out, m)
	}
	clear(o.q[len(out):])
	o.q = out
	return dropped
}

func (o *outQueue) queuedUploads() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.uploads
}

// pendingAnswers is the number of requests answered (a piece or a reject)
// but not yet written.
func (o *outQueue) pendingAnswers() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.uploads + o.rejects
}

func (h *connHandle) close() {
	h.closeOnce.Do(func() {
		close(h.quit)
		h.c.Close()
	})
}

// connEvent is one message of a connection, sent by its reader goroutine
// to the owner in a connBatch (which also carries the connection's end).
// Slices are owned copies.
type connEvent struct {
	msg   peerwire.Message
	block *blockBuf // piece payload (msg.Block aliases it)
}

type connBatch struct {
	h   *connHandle
	evs []connEvent
	err error // non-nil: the connection ended (evs may still hold messages)
}

// blockBuf is a pooled buffer for one received block of at most the
// standard size (larger blocks, accepted from others, get their own copy).
type blockBuf struct {
	b [peerwire.BlockSize]byte
}

// blockPool recycles block buffers. It is a bounded free list rather than a
// sync.Pool: the garbage collector empties a sync.Pool at every cycle, and
// under the coordinator's soft memory limit cycles come often enough that
// the pool then hands out fresh 16 KiB buffers for most blocks, whose
// garbage brings on the next cycle sooner. At most blockPoolCap idle
// buffers (4 MiB) are kept for the whole process.
var blockPool = make(blockFreeList, blockPoolCap)

const blockPoolCap = 256

type blockFreeList chan *blockBuf

// Get returns an idle buffer or a new one.
func (l blockFreeList) Get() *blockBuf {
	select {
	case b := <-l:
		return b
	default:
		return new(blockBuf)
	}
}

// Put keeps b for reuse unless the list is full (b is then garbage).
func (l blockFreeList) Put(b *blockBuf) {
	if b == nil {
		return
	}
	select {
	case l <- b:
	default:
	}
}

var batchPool = sync.Pool{New: func() any { return &connBatch{evs: make([]connEvent, 0, 64)} }}

// handshake performs the BitTorrent handshake on c. Outgoing connections
// send first; incoming ones check the info hash before answering.
// An incoming peer must send its first byte within firstByte (if > 0), the
// whole handshake within timeout.
func (w *wire) handshake(c net.Conn, outgoing bool, timeout, firstByte time.Duration) (peerwire.Handshake, error) {
	if !w.trackHandshake(c) {
		return peerwire.Handshake{}, net.ErrClosed
	}
	defer w.untrackHandshake(c)
	deadline := time.Now().Add(timeout)
	c.SetDeadline(deadline)
	defer c.SetDeadline(time.Time{})
	var r io.Reader = c
	if firstByte > 0 && firstByte < timeout {
		c.SetReadDeadline(time.Now().Add(firstByte))
		r = &firstByteReader{c: c, deadline: deadline}
	}
	ours := w.ourHandshake()
	if outgoing && !sentInPayload(c) {
		if err := peerwire.WriteHandshake(c, ours); err != nil {
			return peerwire.Handshake{}, fmt.Errorf("send handshake: %w", err)
		}
	}
	theirs, err := peerwire.ReadHandshake(r)
	if err != nil {
		return theirs, fmt.Errorf("read handshake: %w", err)
	}
	if theirs.InfoHash != w.cfg.InfoHash {
		return theirs, ErrWrongInfoHash
	}
	if theirs.PeerID == w.cfg.PeerID {
		return theirs, ErrOwnPeerID
	}
	if !outgoing {
		if err := peerwire.WriteHandshake(c, ours); err != nil {
			return theirs, fmt.Errorf("send handshake: %w", err)
		}
	}
	return theirs, nil
}

// trackHandshake records a connection in its handshake so that Close can
// interrupt it; it reports false once the swarm is shutting down.
func (w *wire) trackHandshake(c net.Conn) bool {
	w.hsMu.Lock()
	defer w.hsMu.Unlock()
	if w.hsConns == nil {
		return false
	}
	w.hsConns[c] = struct{}{}
	return true
}

func (w *wire) untrackHandshake(c net.Conn) {
	w.hsMu.Lock()
	defer w.hsMu.Unlock()
	delete(w.hsConns, c)
}

// abortHandshakes closes every connection still in its handshake and
// refuses new ones.
func (w *wire) abortHandshakes() {
	w.hsMu.Lock()
	defer w.hsMu.Unlock()
	for c := range w.hsConns {
		c.Close()
	}
	w.hsConns = nil
}

func (w *wire) tuneConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok && w.cfg.SocketBuffer > 0 {
		tc.SetReadBuffer(w.cfg.SocketBuffer)
		tc.SetWriteBuffer(w.cfg.SocketBuffer)
	}
}

// outgoingHandshakeWait is how long a peer that accepted our connection
// has to answer the handshake: three HandshakeTimeouts (30 s by default),
// for the queue of a busy seeder; a dial slot (MaxDialing) is what it
// costs meanwhile.
func outgoingHandshakeWait(handshakeTimeout time.Duration) time.Duration { return 3 * handshakeTimeout }

// dial connects to addr and hands the connection to the owner. With
// plainFirst (a PEX peer that does not prefer encryption) under
// mse.Prefer the plaintext handshake is tried first, and MSE after it
// failed.
func (w *wire) dial(addr netip.AddrPort, plainFirst bool) {
	defer w.wg.Done()
	w.log.Debug("dialing", "peer", addr, "plaintext first", plainFirst)
	var c net.Conn
	var hs peerwire.Handshake
	var err error
	reached := false
	if plainFirst && w.cfg.Encryption == mse.Prefer {
		c, hs, reached, err = w.dialHandshake(addr, w.dialPlain)
		if err != nil && reached && w.ctx.Err() == nil {
			w.log.Debug("plaintext handshake failed; dialling with MSE", "peer", addr, "err", err)
			c, hs, reached, err = w.dialHandshake(addr, w.dialConn)
		}
	} else {
		c, hs, reached, err = w.dialHandshake(addr, w.dialConn)
	}
	select {
	case w.newConns <- newConn{c: c, addr: addr, hs: hs, err: err, outgoing: true, reached: reached}:
	case <-w.closing:
		if c != nil {
			c.Close()
		}
	}
}

// dialHandshake connects to addr with connect (dialConn or dialPlain)
// and runs the BitTorrent handshake; reached says the peer took the TCP
// connection.
func (w *wire) dialHandshake(addr netip.AddrPort, connect func(netip.AddrPort) (net.Conn, error)) (net.Conn, peerwire.Handshake, bool, error) {
	c, err := connect(addr)
	w.log.Debug("dialed", "peer", addr, "err", err)
	var hs peerwire.Handshake
	reached := err == nil || errors.Is(err, errEncryptedHandshake)
	if err != nil {
		return nil, hs, reached, err
	}
	w.tuneConn(c)
	// A busy peer (a seeder taking many torrents' connections from
	// its accept queue a few a second, as aria2c does) answers late:
	// a peer that took the connection gets outgoingHandshakeWait.
	hs, err = w.handshake(c, true, outgoingHandshakeWait(w.cfg.HandshakeTimeout), 0)
	if err != nil {
		c.Close()
		return nil, hs, reached, err
	}
	return c, hs, reached, nil
}

// dialPlain connects to addr without MSE.
func (w *wire) dialPlain(addr netip.AddrPort) (net.Conn, error) {
	d := net.Dialer{Timeout: w.cfg.DialTimeout}
	return d.DialContext(w.ctx, "tcp", addr.String())
}

// readLoop decodes messages and sends them to the owner in batches: a
// batch ends when the read buffer is empty (or at 32 messages), so a busy
// connection costs the owner one channel receive per buffer-full, not per
// message.
func (w *wire) readLoop(h *connHandle) {
	defer w.wg.Done()
	lim := peerwire.DefaultLimits(w.info.NumPieces(), w.info.PieceLength, w.info.Length)
	lim.MaxMessage = maxExtMessage
	r := peerwire.NewReaderSize(h.c, lim, 128<<10)
	r.SetLowWater(func(n int) error { return lowwater.Set(h.c, n) })
	var lastDeadline time.Time
	b := batchPool.Get().(*connBatch)
	b.h = h
	for {
		if now := time.Now(); now.Sub(lastDeadline) > time.Second {
			h.c.SetReadDeadline(now.Add(w.cfg.IdleTimeout))
			lastDeadline = now
		}
		m, err := r.ReadMessage()
		h.lastRead.Store(time.Now().UnixNano())
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.EOF
			}
			b.err = err
			w.sendBatch(b)
			return
		}
		if m.KeepAlive {
			continue
		}
		ev := connEvent{msg: m}
		switch m.ID {
		case peerwire.Piece:
			if len(m.Block) <= peerwire.BlockSize {
				bb := blockPool.Get()
				n := copy(bb.b[:], m.Block)
				ev.block = bb
				ev.msg.Block = bb.b[:n]
			} else {
				ev.msg.Block = append([]byte(nil), m.Block...)
			}
		case peerwire.BitfieldMsg:
			ev.msg.Bitfield = append([]byte(nil), m.Bitfield...)
		case peerwire.Extended:
			ev.msg.ExtPayload = append([]byte(nil), m.ExtPayload...)
		default:
			ev.msg.Payload = nil
		}
		b.evs = append(b.evs, ev)
		if r.Buffered() == 0 || len(b.evs) >= 32 {
			if !w.sendBatch(b) {
				return
			}
			b = batchPool.Get().(*connBatch)
			b.h = h
		}
	}
}

func (w *wire) sendBatch(b *connBatch) bool {
	select {
	case w.connIn <- b:
		return true
	case <-w.closing:
		for _, ev := range b.evs {
			if ev.block != nil {
				blockPool.Put(ev.block)
			}
		}
		return false
	}
}

// writeLoop drains the connection's outbound queue through a
// peerwire.Writer (batched writes of up to writeBatchSize bytes, each with an
// IdleTimeout deadline), reading upload blocks from Storage straight into
// its buffer, and sends keep-alives on a quiet connection.
func (w *wire) writeLoop(h *connHandle) {
	defer w.wg.Done()
	defer h.c.Close()                                 // unblocks the reader on write failure
	pw := peerwire.NewWriterSize(h.c, writeBatchSize) // its buffer grows on use: an idle connection holds none
	pw.SetWriteTimeout(w.cfg.IdleTimeout)
	var batch []peerwire.Message
	keep := time.NewTicker(w.cfg.KeepAlive / 2)
	defer keep.Stop()
	lastWrite := time.Now()
	for {
		select {
		case <-h.quit:
			return
		case <-keep.C:
			if time.Since(lastWrite) >= w.cfg.KeepAlive {
				if pw.WriteKeepAlive() != nil || pw.Flush() != nil {
					return
				}
				lastWrite = time.Now()
			}
			continue
		case <-h.out.wake:
		}
		for {
			batch = h.out.take(batch[:0])
			if len(batch) == 0 {
				break
			}
			if !w.writeBatch(h, pw, batch) || pw.Flush() != nil {
				return
			}
			lastWrite = time.Now()
		}
	}
}

// writeBatchSize is the size of the writes of a connection's writer: small
// messages and upload blocks are batched up to it.
const writeBatchSize = 128 << 10

// writeBatch encodes one batch taken from the outbound queue; it reports
// false once a write failed. A block that cannot be read from Storage is
// left out (the peer asks again or gives up).
func (w *wire) writeBatch(h *connHandle, pw *peerwire.Writer, batch []peerwire.Message) bool {
	served := 0
	defer func() {
		if served > 0 {
			h.out.mu.Lock()
			h.out.uploads -= served
			h.out.mu.Unlock()
		}
	}()
	for _, m := range batch {
		if m.KeepAlive || m.ID != peerwire.Piece {
			if pw.WriteMessage(m) != nil {
				return false
			}
			continue
		}
		served++
		var readErr error
		err := pw.WritePieceFrom(m.Index, m.Begin, int(m.Length), func(block []byte) error {
			n, err := w.storage.ReadBlock(int(m.Index), int64(m.Begin), block)
			if err == nil && n != len(block) {
				err = io.ErrUnexpectedEOF
			}
			readErr = err
			return err
		})
		if readErr != nil {
			w.log.Debug("upload read failed", "piece", m.Index, "err", readErr)
			continue
		}
		if err != nil {
			return false
		}
		h.uploaded.Add(int64(m.Length))
	}
	return true
}
