package peerswarm

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"flotilla/internal/lowwater"
	"flotilla/peerwire"
)

// Limits on incoming connections. Strangers can open TCP connections
// freely; these keep a few of them from taking every handshake slot or
// peer slot from honest peers (issue 8, item 5).
const (
	// maxHandshakes caps incoming connections in their handshake.
	maxHandshakes = 64
	// maxHandshakesPerIP caps one address's connections in their handshake.
	maxHandshakesPerIP = 4
	// maxConnsPerIP caps one address's incoming connections, handshaking
	// or connected.
	maxConnsPerIP = 8
	// firstByteTimeout is how long an incoming connection may stay silent
	// before its first byte (HandshakeTimeout bounds the whole handshake).
	firstByteTimeout = 3 * time.Second
	// evictIdle is how long an incoming peer must have been silent, and
	// without serving us, to give its slot to a newcomer when all are taken.
	evictIdle = time.Second
	// evictTraded protects a peer that exchanged a block with us (either
	// way) within this time: an honest leecher waiting for our next piece
	// is silent too.
	evictTraded = 30 * time.Second
)

var errEvicted = errors.New("swarm: idle incoming peer evicted for a newcomer")

// errPeerCapLowered: the peer was dropped because the swarm's peer cap
// was lowered (SetMaxPeers) and it was among the least useful.
var errPeerCapLowered = errors.New("swarm: peer dropped: the peer cap was lowered")

// maxIncoming is how many of MaxPeers incoming peers may take: three
// quarters, so that the peers we dial always find room.
func maxIncoming(maxPeers int) int { return max(1, maxPeers*3/4) }

// ipSlots counts incoming connections per source address. Used by the
// accept loop and by connections' Close (any goroutine), under mu.
type ipSlots struct {
	mu          sync.Mutex
	conns       map[netip.Addr]int // incoming connections, handshaking or connected
	handshaking map[netip.Addr]int
	nhs         int // handshakes in progress, all addresses
}

// admit reserves a connection and a handshake slot for ip, or reports
// false if ip or the swarm is at a cap.
func (a *ipSlots) admit(ip netip.Addr) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.conns == nil {
		a.conns, a.handshaking = map[netip.Addr]int{}, map[netip.Addr]int{}
	}
	if a.nhs >= maxHandshakes || a.handshaking[ip] >= maxHandshakesPerIP || a.conns[ip] >= maxConnsPerIP {
		return false
	}
	a.nhs++
	a.handshaking[ip]++
	a.conns[ip]++
	return true
}

// handshakeDone frees ip's handshake slot (the connection slot stays until
// the connection closes).
func (a *ipSlots) handshakeDone(ip netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.nhs--
	if a.handshaking[ip]--; a.handshaking[ip] <= 0 {
		delete(a.handshaking, ip)
	}
}

func (a *ipSlots) closed(ip netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.conns[ip]--; a.conns[ip] <= 0 {
		delete(a.conns, ip)
	}
}

// slotConn is an incoming connection that frees its address's slot when
// closed (once, whoever closes it).
type slotConn struct {
	net.Conn
	once  sync.Once
	slots *ipSlots
	ip    netip.Addr
}

// SetReadLowWater passes a low-water mark to Conn (lowwater.Setter).
func (c *slotConn) SetReadLowWater(n int) error { return lowwater.Set(c.Conn, n) }

func (c *slotConn) Close() error {
	c.once.Do(func() { c.slots.closed(c.ip) })
	return c.Conn.Close()
}

// firstByteReader reads a handshake whose first byte is due sooner than
// the rest: once a byte arrives, the read deadline moves to deadline.
type firstByteReader struct {
	c        net.Conn
	deadline time.Time
	got      bool
}

func (r *firstByteReader) Read(p []byte) (int, error) {
	n, err := r.c.Read(p)
	if n > 0 && !r.got {
		r.got = true
		r.c.SetReadDeadline(r.deadline)
	}
	return n, err
}

var _ io.Reader = (*firstByteReader)(nil)

// acceptLoop accepts incoming connections until the listener closes. A
// connection from a banned address, or over the handshake and per-address
// caps, is closed at once, before any read.
func (w *wire) acceptLoop(l net.Listener) {
	defer w.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		ip := ap.Addr()
		if w.isBanned(ip) || !w.slots.admit(ip) {
			c.Close()
			continue
		}
		w.tuneConn(c)
		sc := &slotConn{Conn: c, slots: &w.slots, ip: ip}
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			var hs peerwire.Handshake
			conn, err := w.incomingConn(sc, c, w.cfg.HandshakeTimeout, firstByteTimeout)
			if err == nil {
				hs, err = w.handshake(conn, false, w.cfg.HandshakeTimeout, firstByteTimeout)
			}
			w.slots.handshakeDone(ip)
			if err != nil {
				w.log.Debug("incoming handshake failed", "peer", ap, "err", err)
				sc.Close()
				return
			}
			select {
			case w.newConns <- newConn{c: conn, addr: ap, hs: hs}:
			case <-w.closing:
				conn.Close()
			}
		}()
	}
}
