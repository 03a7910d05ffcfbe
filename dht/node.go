package dht

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"flotilla/internal/loop"
	"flotilla/watchdog"
)

// ErrClosed is returned by a Node's methods after Close.
var ErrClosed = errors.New("dht: node closed")

var (
	errBusy    = errors.New("dht: too many queries pending")
	errTimeout = errors.New("dht: query timed out")
)

// Node is one DHT node: a UDP socket, a routing table, the peer store and
// the pending queries, all owned by one goroutine (the loop). A reader
// goroutine turns datagrams into decoded messages for the loop through a
// bounded inbox. All methods are safe for concurrent use.
type Node struct {
	cfg   Config
	log   *slog.Logger
	conn  *net.UDPConn
	addr  netip.AddrPort
	wd    *watchdog.Watchdog
	ownWd bool
	loop  *loop.Loop
	inbox chan inbound
	wg    sync.WaitGroup

	// owned by the loop
	self      ID
	table     *table
	tokens    *tokens
	store     *peerStore
	pending   map[string]*pending
	txNext    uint16
	bootstrap []netip.AddrPort
	saved     time.Time
	ostats    ownerStats

	// counted by the reader
	received, malformed, rateLimited, dropped atomic.Int64
}

type inbound struct {
	m    msg
	from netip.AddrPort
}

type pending struct {
	method string
	addr   netip.AddrPort
	ticket watchdog.Ticket
	done   func(m *msg, err error) // runs on the loop
}

type ownerStats struct {
	sent, timeouts, unknownTx, busy, badToken, announced int64
	lookups, peersFound, announcesMade                   int64
	queries                                              map[string]*QueryCounts // by method; only the four we send
}

// QueryCounts are the KRPC queries of one method that a Node sent and what
// became of them.
type QueryCounts struct {
	Sent     int64 // queries sent
	Answered int64 // answered with a response
	Errors   int64 // answered with a KRPC error
	TimedOut int64 // not answered within Config.QueryTimeout
}

func (o *ownerStats) method(m string) *QueryCounts {
	c := o.queries[m]
	if c == nil {
		if o.queries == nil {
			o.queries = make(map[string]*QueryCounts)
		}
		c = &QueryCounts{}
		o.queries[m] = c
	}
	return c
}

// Stats are a Node's figures, a snapshot taken by its loop.
type Stats struct {
	Nodes       int   // contacts in the routing table
	Pending     int   // queries awaiting an answer
	Peers       int   // announced peers stored
	Sent        int64 // datagrams sent
	Received    int64 // datagrams received
	Malformed   int64 // datagrams dropped as malformed
	RateLimited int64 // queries dropped by the per-IP limit
	Dropped     int64 // datagrams dropped because the loop's inbox was full
	Timeouts    int64 // queries that got no answer in time
	UnknownTx   int64 // answers matching no pending query (late, forged)
	Busy        int64 // queries not sent because MaxPending were pending
	BadToken    int64 // announce_peer refused for a bad token
	Announced   int64 // announce_peer from others accepted
	// Queries are the queries we sent, by method ("ping", "find_node",
	// "get_peers", "announce_peer").
	Queries       map[string]QueryCounts
	Lookups       int64 // get_peers and find_node lookups run
	PeersFound    int64 // peers our get_peers lookups found (new to each lookup)
	AnnouncesMade int64 // our announce_peer queries other nodes accepted
}

// New opens the socket, reads the saved routing table and joins the DHT
// through the table's nodes and Config.Bootstrap.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	boot, err := cfg.bootstrapList()
	if err != nil {
		return nil, err
	}
	cfg.Bootstrap = boot
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var self ID
	var saved []nodeInfo
	if cfg.StateFile != "" {
		if self, saved, _, err = loadState(cfg.StateFile); err != nil {
			log.Warn("dht: the saved routing table cannot be read; starting afresh", "file", cfg.StateFile, "err", err)
			self, saved = ID{}, nil
		}
	}
	if cfg.ID != (ID{}) {
		self = cfg.ID
	} else if self == (ID{}) {
		self = RandomID()
	}
	ua, err := net.ResolveUDPAddr("udp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("dht: listen address %q: %w", cfg.Listen, err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if errors.Is(err, syscall.EADDRINUSE) && cfg.ListenFallback != "" {
		log.Info("dht: the DHT port is in use; using another", "listen", cfg.Listen, "instead", cfg.ListenFallback)
		if ua, err = net.ResolveUDPAddr("udp", cfg.ListenFallback); err != nil {
			return nil, fmt.Errorf("dht: fallback listen address %q: %w", cfg.ListenFallback, err)
		}
		conn, err = net.ListenUDP("udp", ua)
	}
	if err != nil {
		return nil, fmt.Errorf("dht: udp socket: %w", err)
	}
	n := &Node{cfg: cfg, log: log, conn: conn, wd: cfg.Watchdog, loop: loop.New(),
		inbox: make(chan inbound, cfg.Inbox), self: self, table: newTable(self, cfg.K, time.Now()),
		tokens: newTokens(cfg.TokenRotation, time.Now()), pending: make(map[string]*pending),
		store: newPeerStore(cfg.PeersPerHash, cfg.MaxPeers, cfg.PeerTTL), saved: time.Now()}
	n.addr = conn.LocalAddr().(*net.UDPAddr).AddrPort()
	if n.wd == nil {
		if n.wd, err = privateWatchdog(cfg.MaxPending); err != nil {
			conn.Close()
			return nil, err
		}
		n.ownWd = true
		n.wg.Add(1)
		go n.readAlerts()
	}
	for _, s := range saved {
		n.table.addUnverified(s)
	}
	var names []string
	n.bootstrap, names = splitBootstrap(cfg.Bootstrap)
	n.wg.Add(2)
	go n.read()
	go n.run()
	n.wg.Add(1)
	go n.resolveBootstrap(names)
	return n, nil
}

func privateWatchdog(maxPending int) (*watchdog.Watchdog, error) {
	c := watchdog.DefaultConfig()
	c.AlertBuffer, c.MaxPending, c.MaxQueued, c.Shards = 64, 2*maxPending, 4096, 1
	c.History, c.MaxKinds, c.OverdueRetention = 0, 1, time.Minute
	wd, err := watchdog.New(c)
	if err != nil {
		return nil, fmt.Errorf("dht: query watchdog: %w", err)
	}
	return wd, nil
}

// ID is the node's id.
func (n *Node) ID() ID { return n.self }

// Addr is the node's UDP address.
func (n *Node) Addr() netip.AddrPort { return n.addr }

// Close stops the node, saving its routing table when Config.StateFile is
// set. It returns the save's error.
func (n *Node) Close() error {
	var err error
	n.loop.Post(func() { err = n.save() })
	n.loop.CloseAndWait()
	n.conn.Close()
	n.wg.Wait()
	if n.ownWd {
		n.wd.Close()
	}
	return err
}

// QueryAlert hands the Node a watchdog alert for one of its queries;
// whoever reads a shared Config.Watchdog's alerts routes QueryKind alerts
// here. It is a wake-up: the loop asks the watchdog which of its queries
// are overdue. It never blocks.
func (n *Node) QueryAlert(a watchdog.Alert) {
	if a.Packet.Kind == QueryKind && strings.HasPrefix(a.Packet.Owner, OwnerPrefix) {
		n.loop.Post(n.checkOverdue)
	}
}

func (n *Node) readAlerts() {
	defer n.wg.Done()
	for {
		select {
		case a := <-n.wd.Alerts():
			n.QueryAlert(a)
		case <-n.loop.Done():
			return
		}
	}
}

// call runs f on the loop and waits for it.
func (n *Node) call(ctx context.Context, f func()) error {
	done := make(chan struct{})
	n.loop.Post(func() { f(); close(done) })
	select {
	case <-done:
		return nil
	case <-n.loop.Done():
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns the node's figures.
func (n *Node) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	err := n.call(ctx, func() {
		o := n.ostats
		s = Stats{Nodes: n.table.len(), Pending: len(n.pending), Peers: n.store.len(), Sent: o.sent,
			Timeouts: o.timeouts, UnknownTx: o.unknownTx, Busy: o.busy, BadToken: o.badToken, Announced: o.announced,
			Lookups: o.lookups, PeersFound: o.peersFound, AnnouncesMade: o.announcesMade,
			Queries: make(map[string]QueryCounts, len(o.queries))}
		for m, c := range o.queries {
			s.Queries[m] = *c
		}
	})
	s.Received, s.Malformed, s.RateLimited, s.Dropped = n.received.Load(), n.malformed.Load(), n.rateLimited.Load(), n.dropped.Load()
	return s, err
}

// read is the reader goroutine: it decodes each datagram, applies the
// per-IP query limit, and queues what is left for the loop, dropping it
// when the inbox is full. Nothing a remote sends can block it or grow a
// queue beyond Config.Inbox.
func (n *Node) read() {
	defer n.wg.Done()
	rl := newRateLimiter(n.cfg.QueryRate, n.cfg.QueryBurst, n.cfg.MaxRateIPs)
	buf := make([]byte, maxDatagram+1)
	for {
		sz, from, err := n.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ICMP port unreachable reported on Linux
		}
		n.received.Add(1)
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		m, err := decodeMsg(append([]byte(nil), buf[:sz]...))
		if err != nil {
			n.malformed.Add(1)
			continue
		}
		if m.Y == 'q' && !rl.allow(from.Addr(), time.Now()) {
			n.rateLimited.Add(1)
			continue
		}
		select {
		case n.inbox <- inbound{m: m, from: from}:
		default:
			n.dropped.Add(1)
		}
	}
}

// run is the loop: the only goroutine that touches the table, the peer
// store, the tokens and the pending queries.
func (n *Node) run() {
	defer n.wg.Done()
	defer n.loop.Stopped()
	tick := time.NewTicker(n.cfg.Tick)
	defer tick.Stop()
	for {
		select {
		case <-n.loop.Closing():
			n.loop.RunPosted() // the final save
			n.cancelAll()
			return
		case <-n.loop.Wake():
			n.loop.RunPosted()
		case in := <-n.inbox:
			n.handle(in)
		case now := <-tick.C:
			n.housekeep(now)
		}
	}
}

// cancelAll ends every pending query's packet when the node stops.
func (n *Node) cancelAll() {
	for t, p := range n.pending {
		n.wd.Cancel(p.ticket)
		delete(n.pending, t)
	}
}

func (n *Node) housekeep(now time.Time) {
	n.checkOverdue()
	n.tokens.tick(now)
	n.store.expire(now)
	for _, target := range n.table.staleBuckets(now, n.cfg.RefreshInterval) {
		n.startLookup(target, false, LookupOptions{}, nil)
	}
	for _, q := range n.table.questionable(now, 2) {
		n.ping(q.Addr)
	}
	if n.cfg.StateFile != "" && now.Sub(n.saved) >= n.cfg.SaveInterval {
		if err := n.save(); err != nil {
			n.log.Warn("dht: cannot save the routing table", "file", n.cfg.StateFile, "err", err)
		}
	}
}

func (n *Node) save() error {
	if n.cfg.StateFile == "" {
		return nil
	}
	n.saved = time.Now()
	return saveState(n.cfg.StateFile, n.self, n.table.all())
}

// query sends a KRPC query to addr as a watchdog intent; done runs on the
// loop with the answer or the failure (an error response, a timeout, a
// full pending table).
func (n *Node) query(addr netip.AddrPort, method string, args []byte, done func(*msg, error)) {
	if len(n.pending) >= n.cfg.MaxPending {
		n.ostats.busy++
		done(nil, errBusy)
		return
	}
	var t [2]byte
	for {
		n.txNext++
		t = [2]byte{byte(n.txNext >> 8), byte(n.txNext)}
		if _, busy := n.pending[string(t[:])]; !busy {
			break
		}
	}
	pkt := appendQuery(nil, t[:], method, args)
	if _, err := n.conn.WriteToUDPAddrPort(pkt, addr); err != nil {
		done(nil, fmt.Errorf("dht: send %s to %v: %w", method, addr, err))
		return
	}
	n.ostats.sent++
	n.ostats.method(method).Sent++
	tk := n.wd.Issue(QueryKind, OwnerPrefix+hex.EncodeToString(t[:]), n.cfg.QueryTimeout)
	n.pending[string(t[:])] = &pending{method: method, addr: addr, ticket: tk, done: done}
}

// checkOverdue fails the queries whose watchdog packets are overdue: the
// watchdog is the only clock of query timeouts.
func (n *Node) checkOverdue() {
	if len(n.pending) == 0 {
		return
	}
	keys := make([]string, 0, len(n.pending))
	ts := make([]watchdog.Ticket, 0, len(n.pending))
	for k, p := range n.pending {
		keys = append(keys, k)
		ts = append(ts, p.ticket)
	}
	late, err := n.wd.Overdue(ts)
	if err != nil {
		return
	}
	now := time.Now()
	for i, k := range keys {
		p, ok := n.pending[k]
		if !late[i] || !ok {
			continue
		}
		delete(n.pending, k)
		n.wd.Cancel(p.ticket)
		n.ostats.timeouts++
		n.ostats.method(p.method).TimedOut++
		n.log.Debug("dht: query timed out", "to", p.addr, "method", p.method)
		n.table.failed(p.addr, now)
		p.done(nil, errTimeout)
	}
}

func (n *Node) send(to netip.AddrPort, pkt []byte) {
	if _, err := n.conn.WriteToUDPAddrPort(pkt, to); err == nil {
		n.ostats.sent++
	}
}

func (n *Node) ping(addr netip.AddrPort) {
	d := newDict()
	d.id("id", n.self)
	n.query(addr, "ping", d.done(), func(*msg, error) {})
}

// resolveBootstrap resolves the bootstrap names (DNS, which tests never
// use; literal IP:PORT entries were taken by New) and then joins the DHT.
func (n *Node) resolveBootstrap(names []string) {
	defer n.wg.Done()
	var addrs []netip.AddrPort
	for _, b := range names {
		host, port, err := net.SplitHostPort(b)
		if err != nil {
			n.log.Warn("dht: bad bootstrap address; want HOST:PORT", "addr", b)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		go func() {
			select {
			case <-n.loop.Closing():
				cancel()
			case <-ctx.Done():
			}
		}()
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		cancel()
		p, perr := net.LookupPort("udp", port)
		if err != nil || perr != nil {
			n.log.Warn("dht: cannot resolve a bootstrap node", "addr", b, "err", errors.Join(err, perr))
			continue
		}
		for _, ip := range ips {
			addrs = append(addrs, netip.AddrPortFrom(ip.Unmap(), uint16(p)))
		}
	}
	n.loop.Post(func() {
		n.bootstrap = append(n.bootstrap, addrs...)
		n.startLookup(n.self, false, LookupOptions{}, nil) // join: find our neighbours
	})
}

// splitBootstrap separates literal IP:PORT entries from names.
func splitBootstrap(list []string) (addrs []netip.AddrPort, names []string) {
	for _, b := range list {
		if a, err := netip.ParseAddrPort(b); err == nil {
			addrs = append(addrs, netip.AddrPortFrom(a.Addr().Unmap(), a.Port()))
		} else {
			names = append(names, b)
		}
	}
	return addrs, names
}
