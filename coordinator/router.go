package coordinator

import (
	"encoding/hex"
	"errors"
	"flotilla/peerwire/mse"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"flotilla/peerwire"
)

// IncomingConfig bounds the peer connections whose torrent is not known
// yet: those the router is still identifying. A stranger can open TCP
// connections freely, so each bound holds whatever it sends.
type IncomingConfig struct {
	// Timeout bounds identifying a connection: reading the first 48 bytes
	// of its handshake, up to the info-hash.
	Timeout time.Duration
	// MaxPending caps connections being identified at once; over it a new
	// connection evicts the oldest pending one (an honest peer sends its
	// handshake in one packet; the one still pending is the slow one).
	MaxPending int
	// MaxPendingPerIP caps one address's (an IPv6 /64's) pending
	// connections; over it the address's oldest pending one is evicted.
	MaxPendingPerIP int
	// MaxPendingPerMember is MaxPendingPerIP for the address of a swarm
	// node of the cluster (its gossip and delegate addresses): a node
	// starting many jobs dials us from one address with many swarms at
	// once. Still bounded, and MaxPending bounds all; when MaxPending is
	// reached the oldest pending connection not from a member is evicted
	// first, so strangers cannot push a member's out.
	MaxPendingPerMember int
	// Queue caps the connections routed to a job and not yet taken by its
	// local swarm; over it the newcomer is closed.
	Queue int

	encryption mse.Policy // Config.Encryption (see encrypted)
}

// DefaultIncomingConfig returns the bounds a Config's zero fields take.
func DefaultIncomingConfig() IncomingConfig {
	return IncomingConfig{Timeout: 5 * time.Second, MaxPending: 128, MaxPendingPerIP: 8, MaxPendingPerMember: 64, Queue: 16}
}

// withDefaults fills zero fields from DefaultIncomingConfig.
func (c IncomingConfig) withDefaults() IncomingConfig {
	d := DefaultIncomingConfig()
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	if c.MaxPending <= 0 {
		c.MaxPending = d.MaxPending
	}
	if c.MaxPendingPerIP <= 0 {
		c.MaxPendingPerIP = d.MaxPendingPerIP
	}
	if c.MaxPendingPerMember <= 0 {
		c.MaxPendingPerMember = max(c.MaxPendingPerIP, d.MaxPendingPerMember)
	}
	if c.Queue <= 0 {
		c.Queue = d.Queue
	}
	return c
}

// IncomingStats counts what became of incoming peer connections since
// the Coordinator started.
type IncomingStats struct {
	Accepted int64 // connections accepted
	Routed   int64 // handed to the job of their torrent
	Unknown  int64 // closed: no job for the torrent they asked for
	Failed   int64 // closed: no handshake within Timeout, or not BitTorrent
	Evicted  int64 // closed pending, to make room (MaxPending, MaxPendingPerIP)
	Dropped  int64 // closed: their job's queue was full
	// Pending is how many are being identified now; PeakPending and
	// PeakPendingPerIP are the most ever at once (overall, one address).
	Pending, PeakPending, PeakPendingPerIP int
}

// ErrTorrentRunning is returned by Job.Start when another job of the
// Coordinator runs the same torrent.
var ErrTorrentRunning = errors.New("coordinator: a job for this torrent is already running")

// identifier finds the torrent an incoming connection asks for. It reads
// what it needs from c (before deadline) and returns the info-hash and
// the connection to hand to that torrent's swarm, which must give the
// swarm the stream as if nothing had been read. The plaintext BEP 3
// handshake is identifyPlain; an encrypted (MSE/PE) handshake will need
// its own, given the info-hashes the router serves, since the torrent is
// only found by trying each against the initiator's obfuscated hash.
type identifier func(c net.Conn, deadline time.Time) (infoHash [20]byte, routed net.Conn, err error)

// identifyPrefix is what identifyPlain reads: pstrlen, pstr, reserved
// bytes and info-hash (the peer id is left for the swarm).
const identifyPrefix = 1 + len(peerwire.Pstr) + 8 + 20

var errNotBitTorrent = errors.New("not a BitTorrent handshake")

// identifyPlain reads a BEP 3 handshake up to its info-hash. The
// protocol string is checked first, so that a stranger speaking another
// protocol is closed before it sends 48 bytes.
func identifyPlain(c net.Conn, deadline time.Time) ([20]byte, net.Conn, error) {
	var ih [20]byte
	buf := make([]byte, identifyPrefix)
	c.SetReadDeadline(deadline)
	if _, err := io.ReadFull(c, buf[:20]); err != nil {
		return ih, nil, err
	}
	if buf[0] != byte(len(peerwire.Pstr)) || string(buf[1:20]) != peerwire.Pstr {
		return ih, nil, errNotBitTorrent
	}
	if _, err := io.ReadFull(c, buf[20:]); err != nil {
		return ih, nil, err
	}
	c.SetReadDeadline(time.Time{})
	copy(ih[:], buf[28:])
	return ih, &routedConn{Conn: c, head: buf}, nil
}

// routedConn is an incoming connection whose first bytes the router has
// read: Read returns them first. Like the swarm's use of a connection, it
// allows one Read at a time.
type routedConn struct {
	net.Conn
	head []byte
}

func (c *routedConn) Read(p []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(p, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// router owns the peer listener: its accept loop takes each incoming
// connection, identifies its torrent (identify) and hands it to the
// job's jobListener; a connection for no job is closed. One goroutine,
// run, owns the routes, the pending connections and the counters; the
// accept loop and one goroutine per pending connection report to it.
type router struct {
	ln           net.Listener
	log          *slog.Logger
	cfg          IncomingConfig
	identify     identifier
	socketBuffer int // SO_RCVBUF/SO_SNDBUF of routed TCP connections, if > 0

	accepted   chan net.Conn
	identified chan identified
	cmds       chan func()
	closing    chan struct{}
	done       chan struct{}
	wg         sync.WaitGroup // the accept loop and the identifying goroutines
	closeOnce  sync.Once

	// Owned by run.
	routes  map[[20]byte]*jobListener
	byReq2  map[[20]byte][20]byte // HASH('req2', info-hash) → info-hash of each route (MSE)
	pending map[net.Conn]pendingConn
	perIP   map[netip.Prefix]int
	members map[netip.Prefix]bool // sources of the cluster's swarm nodes (MaxPendingPerMember)
	seq     uint64
	stats   IncomingStats
}

type pendingConn struct {
	src netip.Prefix
	seq uint64 // order of arrival: the smallest is the oldest
}

type identified struct {
	c, routed net.Conn
	ih        [20]byte
	err       error
}

func newRouter(ln net.Listener, cfg IncomingConfig, socketBuffer int, log *slog.Logger) *router {
	r := &router{ln: ln, log: log, cfg: cfg.withDefaults(), socketBuffer: socketBuffer,
		accepted: make(chan net.Conn), identified: make(chan identified), cmds: make(chan func()),
		closing: make(chan struct{}), done: make(chan struct{}),
		routes: map[[20]byte]*jobListener{}, byReq2: map[[20]byte][20]byte{}, pending: map[net.Conn]pendingConn{}, perIP: map[netip.Prefix]int{}}
	r.identify = r.identifierFor(r.cfg.encryption)
	r.wg.Add(1)
	go r.acceptLoop()
	go r.run()
	return r
}

// acceptLoop accepts connections until the listener closes and hands
// them to run. Errors such as EMFILE are retried after a back-off.
func (r *router) acceptLoop() {
	defer r.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		c, err := r.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			r.log.Debug("accept", "err", err)
			select {
			case <-time.After(backoff):
				backoff = min(2*backoff, time.Second)
				continue
			case <-r.closing:
				return
			}
		}
		backoff = 5 * time.Millisecond
		select {
		case r.accepted <- c:
		case <-r.closing:
			c.Close()
			return
		}
	}
}

func (r *router) run() {
	defer close(r.done)
	for {
		select {
		case <-r.closing:
			for c := range r.pending {
				c.Close() // their goroutines report to nobody: see identifyConn
			}
			return
		case f := <-r.cmds:
			f()
		case c := <-r.accepted:
			r.admit(c)
		case id := <-r.identified:
			r.route(id)
		}
	}
}

// do runs f on run's goroutine and waits for it; false once closed.
func (r *router) do(f func()) bool {
	ran := make(chan struct{})
	select {
	case r.cmds <- func() { f(); close(ran) }:
		<-ran
		return true
	case <-r.done:
		return false
	}
}

// sourceOf is the key of MaxPendingPerIP: an IPv4 address, or an IPv6 /64
// (one IPv6 host commonly has a whole /64).
func sourceOf(a net.Addr) netip.Prefix {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Prefix{}
	}
	ip := ap.Addr().Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// admit makes room for c, evicting the oldest pending connection of its
// address or of all if either is at its cap, and starts identifying it.
func (r *router) admit(c net.Conn) {
	r.stats.Accepted++
	src := sourceOf(c.RemoteAddr())
	limit := r.cfg.MaxPendingPerIP
	if r.members[src] {
		limit = r.cfg.MaxPendingPerMember
	}
	if r.perIP[src] >= limit {
		r.evictOldest(src, true)
	}
	if len(r.pending) >= r.cfg.MaxPending {
		r.evictOldest(src, false)
	}
	r.seq++
	r.pending[c] = pendingConn{src: src, seq: r.seq}
	r.perIP[src]++
	r.stats.Pending = len(r.pending)
	r.stats.PeakPending = max(r.stats.PeakPending, len(r.pending))
	r.stats.PeakPendingPerIP = max(r.stats.PeakPendingPerIP, r.perIP[src])
	deadline := time.Now().Add(r.cfg.Timeout)
	r.wg.Add(1)
	go r.identifyConn(c, deadline)
}

// identifyConn runs identify on its own goroutine and reports to run.
func (r *router) identifyConn(c net.Conn, deadline time.Time) {
	defer r.wg.Done()
	ih, routed, err := r.identify(c, deadline)
	select {
	case r.identified <- identified{c: c, routed: routed, ih: ih, err: err}:
	case <-r.closing:
		c.Close()
	}
}

// evictOldest closes the oldest pending connection of src if sameSrc;
// otherwise the oldest of all, one not from a member if there is one.
func (r *router) evictOldest(src netip.Prefix, sameSrc bool) {
	var oldest net.Conn
	var best uint64
	var bestMember bool
	for c, p := range r.pending {
		if sameSrc && p.src != src {
			continue
		}
		member := !sameSrc && r.members[p.src]
		if oldest == nil || (bestMember && !member) || (member == bestMember && p.seq < best) {
			oldest, best, bestMember = c, p.seq, member
		}
	}
	if oldest != nil {
		r.stats.Evicted++
		r.log.Debug("too many incoming connections pending; evicting the oldest", "peer", oldest.RemoteAddr())
		r.unpend(oldest)
		oldest.Close()
	}
}

// unpend forgets a pending connection; false if it was not (evicted).
func (r *router) unpend(c net.Conn) bool {
	p, ok := r.pending[c]
	if !ok {
		return false
	}
	delete(r.pending, c)
	if r.perIP[p.src]--; r.perIP[p.src] <= 0 {
		delete(r.perIP, p.src)
	}
	r.stats.Pending = len(r.pending)
	return true
}

// route hands an identified connection to its torrent's job, or closes it.
func (r *router) route(id identified) {
	if !r.unpend(id.c) {
		id.c.Close() // evicted: counted there
		return
	}
	if id.err != nil {
		r.stats.Failed++
		r.log.Debug("incoming connection not identified", "peer", id.c.RemoteAddr(), "err", id.err)
		id.c.Close()
		return
	}
	l := r.routes[id.ih]
	if l == nil {
		r.stats.Unknown++
		r.log.Debug("incoming connection for a torrent not served", "peer", id.c.RemoteAddr(),
			"infohash", hex.EncodeToString(id.ih[:]))
		id.c.Close()
		return
	}
	if tc, ok := id.c.(*net.TCPConn); ok && r.socketBuffer > 0 {
		tc.SetReadBuffer(r.socketBuffer)
		tc.SetWriteBuffer(r.socketBuffer)
	}
	select {
	case l.conns <- id.routed:
		r.stats.Routed++
	default:
		r.stats.Dropped++
		r.log.Debug("job's incoming queue full; closing", "peer", id.c.RemoteAddr())
		id.c.Close()
	}
}

// listen registers a torrent and returns the listener its local swarm
// accepts routed connections on. Another job for the same torrent is
// ErrTorrentRunning.
func (r *router) listen(ih [20]byte) (*jobListener, error) {
	l := &jobListener{r: r, ih: ih, conns: make(chan net.Conn, r.cfg.Queue), closed: make(chan struct{})}
	var err error
	ran := r.do(func() {
		if r.routes[ih] != nil {
			err = fmt.Errorf("%w (info-hash %x): close that job first", ErrTorrentRunning, ih)
			return
		}
		r.routes[ih] = l
		r.byReq2[mse.Req2(ih)] = ih
	})
	if !ran {
		return nil, errors.New("coordinator: closed")
	}
	return l, err
}

// setMembers replaces the sources of the cluster's swarm nodes
// (MaxPendingPerMember).
func (r *router) setMembers(srcs map[netip.Prefix]bool) {
	r.do(func() { r.members = srcs })
}

// Stats returns the counters (zero once closed).
func (r *router) Stats() IncomingStats {
	var s IncomingStats
	r.do(func() { s = r.stats })
	return s
}

// close closes the listener and every pending connection, and waits for
// the router's goroutines. Jobs' listeners still open deliver no more.
func (r *router) close() {
	r.closeOnce.Do(func() {
		close(r.closing)
		r.ln.Close()
		<-r.done
		r.wg.Wait()
	})
}

// jobListener is a job's view of the peer listener: Accept returns the
// connections routed to its torrent, with the bytes read to identify
// them replayed first; Close takes the torrent off the routes.
type jobListener struct {
	r      *router
	ih     [20]byte
	conns  chan net.Conn // written by the router's run only while routed
	closed chan struct{}
	once   sync.Once
}

var _ net.Listener = (*jobListener)(nil)

func (l *jobListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close unregisters the torrent, then closes the connections queued and
// not yet accepted.
func (l *jobListener) Close() error {
	l.once.Do(func() {
		l.r.do(func() {
			if l.r.routes[l.ih] == l {
				delete(l.r.routes, l.ih)
				delete(l.r.byReq2, mse.Req2(l.ih))
			}
		})
		close(l.closed)
		for {
			select {
			case c := <-l.conns:
				c.Close()
			default:
				return
			}
		}
	})
	return nil
}

func (l *jobListener) Addr() net.Addr { return l.r.ln.Addr() }
