package cluster

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Errors of a running member.
var (
	// ErrClosed: the Cluster was closed.
	ErrClosed = errors.New("cluster closed")
	// ErrLeft: the member left the cluster.
	ErrLeft = errors.New("left the cluster")
	// ErrJoin: a join attempt reached no member.
	ErrJoin = errors.New("cluster join failed")
)

// Cluster is this process's membership in a cluster. Its methods are safe
// for concurrent use.
type Cluster struct {
	cfg  Config // private copy
	log  *slog.Logger
	name string
	addr netip.AddrPort // advertised gossip address
	port int            // bound gossip port (see joinPort)

	ml     *memberlist.Memberlist
	meta   *metaDelegate
	events *pump

	// life guards ml against use after Shutdown: Leave and UpdateMeta hold
	// it for reading, Close for writing.
	life   sync.RWMutex
	closed bool
	metaMu sync.Mutex // serialises UpdateMeta and Leave's intent announcement
	left   atomic.Bool
	leftCh chan struct{} // closed by Leave

	ctx      context.Context // cancelled by Close: stops dials and joins
	cancel   context.CancelFunc
	joined   chan struct{} // closed at the first successful join
	joinDone chan struct{} // closed when the join goroutine exits
	joinMu   sync.Mutex
	joinErr  error              // last join error; nil after a success
	refresh  chan time.Duration // Refresh's requests to the join goroutine
	// refreshEnd is when the current Refresh ends (zero: none). Owned by
	// the join goroutine.
	refreshEnd time.Time

	closeOnce sync.Once
	closeErr  error
}

// Start binds the gossip port, becomes a member and starts joining cfg.Join
// in the background (see Joined). It returns as soon as the member is up.
func Start(cfg Config) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Join = slices.Clone(cfg.Join)
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Resolve == nil {
		cfg.Resolve = systemResolve
	}
	mlLog := newMemberlistLogger(logger)

	bindIP, bindPort, _ := splitBind(cfg.BindAddr)
	ctx, cancel := context.WithCancel(context.Background())
	nt, err := listen(bindIP, bindPort, mlLog)
	if err != nil {
		cancel()
		return nil, err
	}
	fail := func(err error) (*Cluster, error) {
		cancel()
		nt.Shutdown()
		return nil, err
	}
	addr, err := advertiseAddr(ctx, cfg, nt)
	if err != nil {
		return fail(err)
	}
	name := memberName(cfg, addr)

	meta, _ := cfg.Meta.encode()
	c := &Cluster{
		cfg:      cfg,
		log:      logger.With("member", name),
		name:     name,
		addr:     addr,
		port:     nt.GetAutoBindPort(),
		meta:     &metaDelegate{meta: meta},
		leftCh:   make(chan struct{}),
		ctx:      ctx,
		cancel:   cancel,
		joined:   make(chan struct{}),
		joinDone: make(chan struct{}),
		refresh:  make(chan time.Duration, 1),
	}
	c.events = newPump(name, c.log)
	go c.events.run()

	mlc, err := c.memberlistConfig(nt, bindIP, mlLog)
	if err != nil {
		c.events.close()
		return fail(err)
	}
	ml, err := memberlist.Create(mlc)
	if err != nil {
		c.events.close()
		return fail(fmt.Errorf("start memberlist: %w", err))
	}
	c.ml = ml
	if len(cfg.Join) == 0 {
		close(c.joined) // nothing to join: this member starts the cluster
	}
	go c.joinLoop()
	c.log.Info("cluster member started", "addr", addr, "key", cfg.Key, "join", cfg.Join, "profile", cfg.Profile)
	return c, nil
}

// advertiseAddr is the gossip address the other members reach this one at:
// cfg.AdvertiseAddr resolved (its port, if any, overriding the bound one),
// else what memberlist picks from the bound transport.
func advertiseAddr(ctx context.Context, cfg Config, nt *memberlist.NetTransport) (netip.AddrPort, error) {
	advHost, advPort := "", nt.GetAutoBindPort()
	if cfg.AdvertiseAddr != "" {
		h, p, _ := splitHostOptPort(cfg.AdvertiseAddr)
		rctx, rcancel := context.WithTimeout(ctx, resolveTimeout)
		ip, err := resolveOne(rctx, cfg.Resolve, h)
		rcancel()
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("%w: advertise address: %w", ErrConfig, err)
		}
		advHost = ip.String()
		if p != 0 {
			advPort = p
		}
	}
	advIP, advPort, err := nt.FinalAdvertiseAddr(advHost, advPort)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: advertise address: %w", ErrConfig, err)
	}
	ip, _ := netip.AddrFromSlice(advIP)
	return netip.AddrPortFrom(ip.Unmap(), uint16(advPort)), nil
}

// memberName is cfg.Name, or else "host@addr".
func memberName(cfg Config, addr netip.AddrPort) string {
	if cfg.Name != "" {
		return cfg.Name
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "flotilla"
	}
	return host + "@" + addr.String()
}

// memberlistConfig is the memberlist configuration of c: its profile's,
// bound to nt, encrypted with the gossip key, with c's delegates and the
// timing changes Flotilla's small clusters need.
func (c *Cluster) memberlistConfig(nt *memberlist.NetTransport, bindIP netip.Addr, mlLog *log.Logger) (*memberlist.Config, error) {
	cfg := c.cfg
	keyring, err := memberlist.NewKeyring(nil, cfg.Key.Derive(PurposeGossip))
	if err != nil {
		return nil, fmt.Errorf("cluster keyring: %w", err)
	}
	mlc, _ := profileConfig(cfg.Profile)
	mlc.Name = c.name
	mlc.BindAddr = bindIP.String()
	mlc.BindPort = nt.GetAutoBindPort()
	mlc.AdvertiseAddr = c.addr.Addr().String()
	mlc.AdvertisePort = int(c.addr.Port())
	mlc.Transport = &ctxTransport{NetTransport: nt, ctx: c.ctx}
	mlc.Keyring = keyring
	mlc.GossipVerifyIncoming = true
	mlc.GossipVerifyOutgoing = true
	mlc.Delegate = c.meta
	mlc.Events = c.events
	mlc.Logger = mlLog
	// Gossip is probabilistic: a broadcast is sent RetransmitMult·⌈log10(n+1)⌉
	// times in all, to GossipNodes random members per round. The local
	// profile's 2 often leaves one of four members uninformed until the
	// next push/pull (15 s); the LAN profile's 4 reaches small clusters in
	// the first round. Flotilla clusters are small; use at least 4.
	mlc.RetransmitMult = max(mlc.RetransmitMult, 4)
	// A gossip round sends only what is queued (a round with nothing to
	// broadcast sends no packet), so a shorter interval costs a wake-up,
	// not bytes: a join, a metadata change or a leave then reaches a small
	// cluster within 20-40 ms instead of 200-400 ms (LAN profile). A
	// coordinator's goodbye is two such broadcasts (its intent, then the
	// leave), each sent in two rounds, and waited 0.3 s at the end of every
	// download (issue 15). The WAN profile keeps its own.
	if cfg.Profile != ProfileWAN {
		mlc.GossipInterval = min(mlc.GossipInterval, 20*time.Millisecond)
	}
	// A member restarted on the same address (a coordinator killed and
	// started again) answers the others' probes at once, so they never see
	// it die and never re-join it; only a push/pull state exchange tells it
	// who is there. The profiles' 15-30 s leave nodes idle that long; a few
	// members' state every 5 s costs nothing (memberlist stretches the
	// interval for large clusters itself).
	mlc.PushPullInterval = min(mlc.PushPullInterval, 5*time.Second)
	if cfg.PushPullInterval > 0 {
		mlc.PushPullInterval = cfg.PushPullInterval
	}
	// Every member holds the key, so a dead member's name may be taken over
	// at once by its restarted self on a new address (a rescheduled pod).
	mlc.DeadNodeReclaimTime = time.Nanosecond
	return mlc, nil
}

// listen binds the gossip port on TCP and UDP. memberlist picks port 0 by
// binding TCP first and then UDP on the same number, which can race with
// another process; retry a few times like memberlist itself does.
func listen(ip netip.Addr, port int, l *log.Logger) (*memberlist.NetTransport, error) {
	tries := 1
	if port == 0 {
		tries = 10
	}
	var err error
	for range tries {
		var nt *memberlist.NetTransport
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{ip.String()},
			BindPort:  port,
			Logger:    l,
		})
		if err == nil {
			return nt, nil
		}
	}
	return nil, fmt.Errorf("bind gossip %s: %w", net.JoinHostPort(ip.String(), strconv.Itoa(port)), err)
}

// LocalName is this member's name.
func (c *Cluster) LocalName() string { return c.name }

// Addr is this member's advertised gossip address (with the real port when
// BindAddr asked for port 0).
func (c *Cluster) Addr() netip.AddrPort { return c.addr }

// Events delivers membership changes of other members, in order. Nobody has
// to read it: undelivered events wait in a coalescing queue (see Stats) and
// never hold up memberlist. It is closed by Close.
func (c *Cluster) Events() <-chan Event { return c.events.out }

// Members is a snapshot of the live members, this one included (Local),
// sorted by name: every member memberlist has not declared dead or gone. A
// merely suspected member stays listed (memberlist reports no suspicion),
// so State is StateAlive here. The snapshot reflects every event delivered
// by memberlist before the call, read or not. It is nil after Close.
func (c *Cluster) Members() []Member {
	s, _ := c.events.snapshot()
	return s.members
}

// Joined is closed once a join reached another member (at once when
// Config.Join is empty).
func (c *Cluster) Joined() <-chan struct{} { return c.joined }

// JoinErr is the error of the latest join attempt, nil if it succeeded or
// none was made. For display: joining goes on in the background.
func (c *Cluster) JoinErr() error {
	c.joinMu.Lock()
	defer c.joinMu.Unlock()
	return c.joinErr
}

// Stats is a snapshot of a member's bookkeeping.
type Stats struct {
	Members         int    // live members, this one included
	PendingEvents   int    // events not yet read from Events
	CoalescedEvents uint64 // Update events merged into an undelivered one
	DeliveredEvents uint64
	Joined          bool
	JoinErr         error
}

// Stats returns a snapshot.
func (c *Cluster) Stats() Stats {
	s, _ := c.events.snapshot()
	st := Stats{
		Members:         len(s.members),
		PendingEvents:   s.pending,
		CoalescedEvents: s.coalesced,
		DeliveredEvents: s.delivered,
		JoinErr:         c.JoinErr(),
	}
	select {
	case <-c.joined:
		st.Joined = true
	default:
	}
	return st
}

// UpdateMeta advertises new metadata. It returns once the update has been
// broadcast or after Config.UpdateTimeout (then the update still spreads
// with the next push/pull exchange; this is logged, not an error).
func (c *Cluster) UpdateMeta(m Meta) error {
	if err := m.Validate(); err != nil {
		return err
	}
	b, err := m.encode()
	if err != nil {
		return err
	}
	c.life.RLock()
	defer c.life.RUnlock()
	c.metaMu.Lock()
	defer c.metaMu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.left.Load() {
		return ErrLeft
	}
	c.meta.set(b)
	if err := c.ml.UpdateNode(c.cfg.UpdateTimeout); err != nil {
		c.log.Warn("metadata update not yet broadcast", "err", err)
	}
	return nil
}

// Leave tells the other members that this one leaves (they see
// EventLeave, not EventFail) and waits up to timeout for that message to go
// out. Joining stops. Call Close afterwards.
func (c *Cluster) Leave(timeout time.Duration) error {
	if timeout <= 0 {
		return fmt.Errorf("%w: leave timeout must be positive", ErrConfig)
	}
	c.life.RLock()
	defer c.life.RUnlock()
	if c.closed {
		return ErrClosed
	}
	deadline := time.Now().Add(timeout)
	c.metaMu.Lock()
	if c.left.CompareAndSwap(false, true) {
		close(c.leftCh)
		// Announce the intent first so that the others report EventLeave
		// rather than EventFail (see wireMeta). Half the time for this.
		c.meta.setLeaving()
		if err := c.ml.UpdateNode(timeout / 2); err != nil {
			c.log.Warn("leave intent not yet broadcast; others may see a failure", "err", err)
		}
	}
	c.metaMu.Unlock()
	if err := c.ml.Leave(max(time.Until(deadline), time.Millisecond)); err != nil {
		return fmt.Errorf("cluster leave: %w", err)
	}
	return nil
}

// Close stops the member without a goodbye (others will detect a failure
// unless Leave was called first), waits for its goroutines and closes
// Events. It is idempotent.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		c.life.Lock()
		c.closed = true
		c.life.Unlock()
		c.cancel()
		if err := c.ml.Shutdown(); err != nil {
			c.closeErr = fmt.Errorf("memberlist shutdown: %w", err)
		}
		<-c.joinDone
		c.events.close()
		c.log.Info("cluster member stopped")
	})
	return c.closeErr
}

// metaDelegate is memberlist's Delegate: it only supplies our metadata.
type metaDelegate struct {
	mu   sync.Mutex
	meta []byte
}

var _ memberlist.Delegate = (*metaDelegate)(nil)

func (d *metaDelegate) set(b []byte) {
	d.mu.Lock()
	d.meta = b
	d.mu.Unlock()
}

// setLeaving marks the current metadata as leaving.
func (d *metaDelegate) setLeaving() {
	d.mu.Lock()
	defer d.mu.Unlock()
	w, err := decodeWire(d.meta)
	if err != nil { // our own encoding: cannot happen
		return
	}
	w.Leaving = true
	if b, err := encodeWire(w); err == nil && len(b) <= MetaMaxSize {
		d.meta = b
	}
}

func (d *metaDelegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.meta) > limit { // Validate keeps this from happening
		return nil
	}
	return slices.Clone(d.meta)
}

func (d *metaDelegate) NotifyMsg([]byte)                           {}
func (d *metaDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *metaDelegate) LocalState(join bool) []byte                { return nil }
func (d *metaDelegate) MergeRemoteState(buf []byte, join bool)     {}
