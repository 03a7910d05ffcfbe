package tracker

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"flotilla/tracker/internal/wire"
)

// udpReply is what the coordinator hands to a pipeline: a datagram whose
// transaction id the pipeline registered, or a send error. buf comes from
// the shared pool; the pipeline returns it with putBuf.
type udpReply struct {
	buf       *[]byte
	oversized bool // the datagram was larger than Config.UDPMaxReply
	err       error
}

// udpWaiter is the pipeline side of a pending transaction (DESIGN point 7:
// a struct of funcs). deliver must not block: it queues the reply for the
// pipeline's goroutine, which runs the handler (DESIGN point 4), and reports
// false if the reply could not be queued.
type udpWaiter struct {
	from    netip.AddrPort // replies from any other address are ignored
	deliver func(udpReply) bool
}

type udpOut struct {
	to   netip.AddrPort
	buf  *[]byte
	txid uint32
}

// udpCoordinator owns the UDP sockets shared by every UDP pipeline of a
// Client (DESIGN point 5). Callers only state intents: Want records the wish
// to send a datagram and returns at once; the writer goroutine sends it
// later, and a reader goroutine per socket demultiplexes replies by
// transaction id to the waiter registered for it. It never calls into a
// pipeline beyond the non-blocking deliver func.
type udpCoordinator struct {
	log        *slog.Logger
	maxReply   int
	readBuffer int
	listen     [2]string

	mu      sync.Mutex
	conns   [2]*net.UDPConn // 0: IPv4, 1: IPv6; opened on first use
	waiters map[uint32]udpWaiter
	out     []udpOut

	wake    chan struct{} // cap 1: "there is something in out"
	closing chan struct{}
	wg      sync.WaitGroup
	once    sync.Once

	// counters for Stats
	sent, received, unknownTx, wrongSource, short, undeliverable atomic.Int64
}

// bufPool holds datagram buffers: pipelines encode requests into them and
// the readers copy replies into them, so no pipeline keeps a buffer of its own.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func getBuf() *[]byte { b := bufPool.Get().(*[]byte); *b = (*b)[:0]; return b }

func putBuf(b *[]byte) {
	if b != nil && cap(*b) <= 64<<10 {
		bufPool.Put(b)
	}
}

func newUDPCoordinator(log *slog.Logger, listen4, listen6 string, maxReply, readBuffer int) *udpCoordinator {
	c := &udpCoordinator{
		log:        log,
		maxReply:   maxReply,
		readBuffer: readBuffer,
		listen:     [2]string{listen4, listen6},
		waiters:    make(map[uint32]udpWaiter),
		wake:       make(chan struct{}, 1),
		closing:    make(chan struct{}),
	}
	c.wg.Add(1)
	go c.writeLoop()
	return c
}

func family(a netip.AddrPort) int {
	if a.Addr().Is4() {
		return 0
	}
	return 1
}

// conn returns the socket for a family, opening it (and its reader) on
// first use. Called with c.mu held.
func (c *udpCoordinator) connLocked(fam int) (*net.UDPConn, error) {
	select {
	case <-c.closing:
		return nil, ErrClosed
	default:
	}
	if c.conns[fam] != nil {
		return c.conns[fam], nil
	}
	network := [2]string{"udp4", "udp6"}[fam]
	addr, err := net.ResolveUDPAddr(network, c.listen[fam])
	if err != nil {
		return nil, fmt.Errorf("udp listen address %q: %w", c.listen[fam], err)
	}
	conn, err := net.ListenUDP(network, addr)
	if err != nil {
		return nil, fmt.Errorf("udp socket: %w", err)
	}
	if c.readBuffer > 0 {
		_ = conn.SetReadBuffer(c.readBuffer) // best effort (capped by net.core.rmem_max)
	}
	c.conns[fam] = conn
	c.wg.Add(1)
	go c.readLoop(conn)
	return conn, nil
}

// register picks a random, non-zero transaction id that is not pending and
// registers w for it.
func (c *udpCoordinator) register(w udpWaiter) uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		id := rand.Uint32()
		if _, busy := c.waiters[id]; !busy && id != 0 { // 0 means "none" to pipelines
			c.waiters[id] = w
			return id
		}
	}
}

// forget drops the waiter of txid: later replies carrying it are ignored.
func (c *udpCoordinator) forget(txid uint32) {
	c.mu.Lock()
	delete(c.waiters, txid)
	c.mu.Unlock()
}

// want records the wish to send pkt (taking ownership of the pooled buffer)
// to the waiter registered for txid. It does not send: the writer goroutine
// does, and a send error comes back through the waiter.
func (c *udpCoordinator) want(txid uint32, to netip.AddrPort, pkt *[]byte) error {
	c.mu.Lock()
	if _, err := c.connLocked(family(to)); err != nil {
		c.mu.Unlock()
		putBuf(pkt)
		return err
	}
	c.out = append(c.out, udpOut{to: to, buf: pkt, txid: txid})
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default: // the flag is already set
	}
	return nil
}

func (c *udpCoordinator) writeLoop() {
	defer c.wg.Done()
	var batch []udpOut
	for {
		select {
		case <-c.closing:
			return
		case <-c.wake:
		}
		c.mu.Lock()
		batch, c.out = c.out, batch[:0]
		conns := c.conns
		c.mu.Unlock()
		for i, o := range batch {
			_, err := conns[family(o.to)].WriteToUDPAddrPort(*o.buf, o.to)
			putBuf(o.buf)
			batch[i] = udpOut{}
			if err != nil {
				c.fail(o.txid, fmt.Errorf("udp send to %v: %w", o.to, err))
				continue
			}
			c.sent.Add(1)
		}
	}
}

func (c *udpCoordinator) fail(txid uint32, err error) {
	c.mu.Lock()
	w, ok := c.waiters[txid]
	c.mu.Unlock()
	if ok {
		w.deliver(udpReply{err: err})
	}
}

func (c *udpCoordinator) readLoop(conn *net.UDPConn) {
	defer c.wg.Done()
	buf := make([]byte, c.maxReply+1)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-c.closing:
				return
			default:
			}
			c.log.Debug("udp tracker socket read", "err", err)
			continue
		}
		c.received.Add(1)
		_, txid, ok := wire.ReplyHeader(buf[:n])
		if !ok {
			c.short.Add(1) // cannot be routed: ignored
			continue
		}
		c.mu.Lock()
		w, ok := c.waiters[txid]
		c.mu.Unlock()
		if !ok {
			c.unknownTx.Add(1) // stale, duplicate or forged: ignored
			continue
		}
		if from.Addr().Unmap() != w.from.Addr().Unmap() || from.Port() != w.from.Port() {
			c.wrongSource.Add(1)
			continue
		}
		r := udpReply{buf: getBuf(), oversized: n > c.maxReply}
		*r.buf = append(*r.buf, buf[:min(n, c.maxReply)]...)
		if !w.deliver(r) {
			putBuf(r.buf)
			c.undeliverable.Add(1)
		}
	}
}

// UDPStats are the shared UDP coordinator's counters.
type UDPStats struct {
	Sent, Received int64
	UnknownTxID    int64 // replies whose transaction id nobody waits for (ignored)
	WrongSource    int64 // replies from another address than the request went to (ignored)
	Short          int64 // datagrams shorter than a reply header (ignored)
	Undeliverable  int64 // replies dropped because the pipeline's inbox was full
	Pending        int   // registered transaction ids
}

func (c *udpCoordinator) stats() UDPStats {
	c.mu.Lock()
	p := len(c.waiters)
	c.mu.Unlock()
	return UDPStats{Sent: c.sent.Load(), Received: c.received.Load(), UnknownTxID: c.unknownTx.Load(),
		WrongSource: c.wrongSource.Load(), Short: c.short.Load(), Undeliverable: c.undeliverable.Load(), Pending: p}
}

func (c *udpCoordinator) close() {
	c.once.Do(func() {
		c.mu.Lock()
		close(c.closing)
		for _, conn := range c.conns {
			if conn != nil {
				conn.Close()
			}
		}
		for _, o := range c.out {
			putBuf(o.buf)
		}
		c.out = nil
		c.mu.Unlock()
		c.wg.Wait()
	})
}
