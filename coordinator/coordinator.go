package coordinator

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flotilla/peerwire/mse"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"flotilla/cluster"
	"flotilla/dht"
	"flotilla/internal/bindaddr"
	"flotilla/swarm"
	"flotilla/tracker"
	"flotilla/watchdog"
)

// Config configures a Coordinator. Start from DefaultConfig.
type Config struct {
	// ListenAddr is the TCP address peers connect to; its port is the one
	// announced to trackers. Port 0 picks a free one.
	ListenAddr string
	// Logger receives diagnostics (of the coordinator, its jobs and the
	// packages they drive); nil discards them.
	Logger *slog.Logger
	// Trackers configures the tracker client; nil: tracker.DefaultConfig().
	// New sets its Watchdog and Logger (on a copy) and binds it to the
	// listener's address.
	Trackers *tracker.Config
	// Incoming bounds incoming connections until their torrent is known;
	// zero fields take DefaultIncomingConfig's.
	Incoming IncomingConfig
	// DHT, if set, runs a DHT node shared by every job of a public torrent
	// (dhtsource.go); New sets its Watchdog and Logger on a copy.
	DHT *dht.Config
	// Encryption is which peer connections the router and the jobs'
	// local swarms accept and make (MSE/PE); the zero value is mse.Off.
	Encryption mse.Policy
}

// DefaultConfig listens for peers on every address, port 6881.
func DefaultConfig() Config { return Config{ListenAddr: "0.0.0.0:6881"} }

// ListenError is New's error when the peer listener cannot be opened.
type ListenError struct {
	Addr string
	Err  error
}

func (e *ListenError) Error() string { return "cannot listen on " + e.Addr + ": " + e.Err.Error() }
func (e *ListenError) Unwrap() error { return e.Err }

// Coordinator owns what a process's downloads share: the peer listener
// (with the router that hands each incoming connection to the job of its
// torrent), the tracker client (with the UDP coordinator), the watchdog
// and, once JoinCluster is called, the cluster membership. Each torrent
// is a Job (OpenJob); many run at once. Its methods are safe for
// concurrent use.
type Coordinator struct {
	log    *slog.Logger
	ln     net.Listener
	router *router
	enc    mse.Policy // Config.Encryption
	wd     *watchdog.Watchdog
	tc     *tracker.Client
	dht    *dht.Node // nil without Config.DHT

	cmds      chan func()
	closing   chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error

	// The goodbye to the cluster (startLeave): begun once, by Leave or
	// by Close, which waits for it.
	leaveOnce  sync.Once
	leaveStart time.Time
	left       chan time.Duration

	// Owned by run (and by Close once run has returned).
	jobs    map[*Job]struct{}
	members *membership   // nil until JoinCluster
	nodeSrc memberSources // the swarm nodes' addresses, for the router
}

// membership is the cluster as jobs see it: where nodes are, the keys to
// talk to them and the one delegate session per node that every job
// shares.
type membership struct {
	c        *cluster.Cluster
	key      cluster.Key
	ckey     ed25519.PrivateKey // nil: derived from key
	sessions *nodeSessions
}

// New opens the peer listener and starts the watchdog and the tracker
// client. A listener error is a *ListenError.
func New(cfg Config) (*Coordinator, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return nil, &ListenError{Addr: cfg.ListenAddr, Err: err}
	}
	wd, err := watchdog.New(watchdog.DefaultConfig())
	if err != nil {
		ln.Close()
		return nil, err
	}
	tcfg := tracker.DefaultConfig()
	if cfg.Trackers != nil {
		tcfg = *cfg.Trackers
	}
	tcfg.Watchdog, tcfg.Logger = wd, log
	bindaddr.Tracker(&tcfg, ln.Addr().(*net.TCPAddr).IP)
	tc, err := tracker.New(tcfg)
	if err != nil {
		wd.Close()
		ln.Close()
		return nil, fmt.Errorf("trackers: %w", err)
	}
	c := &Coordinator{log: log, ln: ln, wd: wd, tc: tc,
		router: newRouter(ln, cfg.Incoming.encrypted(cfg.Encryption), swarm.DefaultConfig().SocketBuffer, log),
		enc:    cfg.Encryption,
		cmds:   make(chan func()), closing: make(chan struct{}), done: make(chan struct{}),
		jobs: map[*Job]struct{}{}, nodeSrc: memberSources{}}
	if cfg.DHT != nil {
		dcfg := *cfg.DHT
		dcfg.Watchdog, dcfg.Logger = wd, log
		if c.dht, err = dht.New(dcfg); err != nil {
			tc.Close()
			wd.Close()
			c.router.close()
			return nil, err
		}
	}
	go c.run()
	return c, nil
}

// Addr is the peer listener's address.
func (c *Coordinator) Addr() *net.TCPAddr { return c.ln.Addr().(*net.TCPAddr) }

// ClusterConfig says how a Coordinator joins a cluster.
type ClusterConfig struct {
	// Cluster configures the membership: addresses, join list, key and the
	// metadata advertised (a coordinator's role, version and slots).
	Cluster cluster.Config
	// CoordinatorKey signs the coordinator's side of delegate sessions;
	// nil derives one from the cluster key.
	CoordinatorKey ed25519.PrivateKey
}

// ClusterMember is how the cluster knows this coordinator.
type ClusterMember struct {
	Name string
	Addr netip.AddrPort // gossip address
}

// JoinCluster starts the cluster membership. From then on every job runs
// a delegate job on each swarm node that joins, over the one session the
// Coordinator keeps to that node, and hands the resulting remote swarm to
// its sub-chief. Errors are wrapped with "cluster: ".
func (c *Coordinator) JoinCluster(cfg ClusterConfig) (ClusterMember, error) {
	cl, err := cluster.Start(cfg.Cluster)
	if err != nil {
		return ClusterMember{}, fmt.Errorf("cluster: %w", err)
	}
	m := &membership{c: cl, key: cfg.Cluster.Key, ckey: cfg.CoordinatorKey,
		sessions: newNodeSessions(cfg.Cluster.Key, cfg.CoordinatorKey, c.wd, c.log)}
	joined := c.do(func() {
		if c.members != nil {
			err = errors.New("cluster: already joined")
			return
		}
		c.members = m
		for j := range c.jobs {
			j.attach(m)
		}
	})
	if !joined || err != nil {
		cl.Close()
		if err == nil {
			err = errors.New("cluster: coordinator closed")
		}
		return ClusterMember{}, err
	}
	return ClusterMember{Name: cl.LocalName(), Addr: cl.Addr()}, nil
}

// run owns the set of jobs and the membership: it hands membership changes
// to every job and each watchdog alert to the job that owns the packet.
func (c *Coordinator) run() {
	defer close(c.done)
	for {
		var events <-chan cluster.Event
		if c.members != nil {
			events = c.members.c.Events()
		}
		select {
		case <-c.closing:
			return
		case f := <-c.cmds:
			f()
		case ev := <-events:
			if c.nodeSrc.update(ev) { // before any job dials the node
				c.router.setMembers(c.nodeSrc.set())
			}
			for j := range c.jobs {
				j.memberEvent(ev)
			}
			switch {
			case !isNode(ev.Member):
			case ev.Kind == cluster.EventLeave || ev.Kind == cluster.EventFail:
				c.members.sessions.drop(ev.Member.Meta.DelegateAddr)
			default: // joined or updated: have its session ready before a job needs it
				c.members.sessions.warm(ev.Member.Meta.DelegateAddr)
			}
		case a := <-c.wd.Alerts():
			c.routeAlert(a)
		}
	}
}

// do runs f on run's goroutine and waits for it. It reports false, without
// running f, once the Coordinator is closed.
func (c *Coordinator) do(f func()) bool {
	ran := make(chan struct{})
	select {
	case c.cmds <- func() { f(); close(ran) }:
		<-ran
		return true
	case <-c.done:
		return false
	}
}

// Incoming reports what became of incoming peer connections.
func (c *Coordinator) Incoming() IncomingStats { return c.router.Stats() }

// WatchdogStats are the shared watchdog's figures per packet kind
// (tracker requests and schedules, leases, ...): latency quantiles,
// pending and overdue packets. Any goroutine.
func (c *Coordinator) WatchdogStats() []watchdog.KindStats { return c.wd.Stats() }

// DHTStats are the DHT node's figures (dht.Stats: routing table, queries
// by method, packets); false without Config.DHT or once the node is
// closed. It waits for the node's loop at most until ctx ends. Any
// goroutine.
func (c *Coordinator) DHTStats(ctx context.Context) (dht.Stats, bool) {
	if c.dht == nil {
		return dht.Stats{}, false
	}
	s, err := c.dht.Stats(ctx)
	return s, err == nil
}

// DHTPeers looks up peers for an info-hash in the DHT (a get_peers
// lookup, no announce), for a magnet link whose info is being fetched;
// false without Config.DHT. Any goroutine; it returns when the lookup
// ends or ctx does.
func (c *Coordinator) DHTPeers(ctx context.Context, infoHash [20]byte) ([]netip.AddrPort, bool) {
	if c.dht == nil {
		return nil, false
	}
	res, err := c.dht.GetPeers(ctx, dht.ID(infoHash), dht.LookupOptions{})
	return res.Peers, err == nil
}

// leaveTimeout bounds the coordinator's goodbye to the cluster, which
// only spares the nodes a failure detection (they hear Stop on their
// sessions). Its intent, then the leave itself, each go out in two gossip
// rounds (every 20 ms, package cluster). Unbounded, the goodbye once took
// 0.7 s, 10 % of a 192 MiB download on 3 hosts (issue 15).
const leaveTimeout = 300 * time.Millisecond

// Leave begins the coordinator's goodbye to the cluster without waiting
// for it: call it when the run is over (a download complete, an
// interrupt), before closing the jobs, so that the gossip rounds overlap
// the jobs' close (their trackers' "stopped" announces, 30-50 ms at 8
// hosts) instead of following it. Nodes do not act on the coordinator's
// leave; they stop a job when its session says so. Close waits for the
// goodbye. Without a cluster it does nothing.
func (c *Coordinator) Leave() {
	var m *membership
	if c.do(func() { m = c.members }) && m != nil {
		c.startLeave(m)
	}
}

// startLeave starts the goodbye once; Close reads its duration from left.
func (c *Coordinator) startLeave(m *membership) {
	c.leaveOnce.Do(func() {
		c.leaveStart, c.left = time.Now(), make(chan time.Duration, 1)
		go func() {
			m.c.Leave(leaveTimeout)
			c.left <- time.Since(c.leaveStart)
		}()
	})
}

// Close closes every job still open, leaves the cluster and stops the
// tracker client, the watchdog and the listener. It returns the first
// error met.
func (c *Coordinator) Close() error {
	c.closeOnce.Do(func() {
		close(c.closing)
		<-c.done
		var errs []error
		if c.members != nil {
			// The goodbye goes out while the jobs and sessions close:
			// nodes do not act on the coordinator's leave, and the waits
			// (trackers, nodes hanging up, gossip rounds) overlap instead
			// of adding up.
			c.startLeave(c.members)
		}
		for j := range c.jobs {
			errs = append(errs, j.Close())
		}
		if c.members != nil {
			c.members.sessions.close()
			sessions := time.Since(c.leaveStart).Round(time.Millisecond)
			leave := <-c.left
			errs = append(errs, c.members.c.Close())
			c.log.Debug("left the cluster", "sessions", sessions, "leave", leave.Round(time.Millisecond))
		}
		if c.dht != nil {
			errs = append(errs, c.dht.Close())
		}
		errs = append(errs, c.tc.Close(), c.wd.Close())
		c.router.close() // closes the listener
		for _, err := range errs {
			if err != nil {
				c.closeErr = err
				break
			}
		}
	})
	return c.closeErr
}
