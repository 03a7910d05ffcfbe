// Command swarmnode is a Flotilla swarm node: it joins a cluster, takes
// jobs from coordinators over an authenticated delegate session and
// downloads its leases of pieces with its own peer swarm, streaming the
// verified pieces back. It announces itself to each job's trackers with its
// own peer id and address, and uploads what it holds like any client.
//
// All logic is in run and the functions it calls (tested in-process); main supplies the process's
// arguments, streams, signals and exit status.
package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"flotilla/peerwire/mse"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"flotilla/cluster"
	"flotilla/delegate"
	"flotilla/internal/bindaddr"
	"flotilla/internal/cli"
	"flotilla/internal/clusteropt"
	"flotilla/tracker"
)

// version is the build's version (cli.Version: module version or VCS
// revision); -ldflags "-X main.version=..." can still set it.
var version = ""

func init() {
	if version == "" {
		version = cli.Version()
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // the node is leaving cleanly; a second signal ends it at once
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

const summary = `swarmnode — a Flotilla swarm node. It joins the cluster at --join (retrying
until a member answers), then serves coordinators' jobs until stopped: for each
job it downloads the pieces it is leased with its own peer swarm (listening on
--listen's IP), announces itself to the job's trackers, streams verified pieces
back to the coordinator and uploads what it holds to other peers.
Every connection is authenticated and encrypted with the cluster key.`

// nodeOpts are swarmnode's flags.
type nodeOpts struct {
	co          clusteropt.Options
	encryption  mse.Policy
	listen      string
	data        string
	name        string
	http        string
	slots       int
	maxJobs     int
	leave       time.Duration
	verbose     bool
	showVersion bool
	cpuprof     string
}

func (o *nodeOpts) register(fs *flag.FlagSet) {
	o.co.Register(fs, "comma-separated HOST[:PORT] of cluster members to join (a DNS name may resolve to many); required")
	o.co.RegisterCoordinatorPubKey(fs)
	fs.StringVar(&o.listen, "listen", "0.0.0.0:0", "BitTorrent peer address of the node's swarms: each job listens on this IP (port 0: a free port per job)")
	fs.StringVar(&o.data, "data", "", "directory for the pieces of running jobs, one per node (default: a temporary directory, removed on exit); files a killed node left there are removed at start")
	fs.StringVar(&o.name, "name", "", "this node's name in the cluster (default: hostname@address)")
	fs.StringVar(&o.http, "http", "", "TCP address serving GET /healthz (alive) and /readyz (ready: the delegate endpoint up and the cluster joined) for probes; default: none")
	o.encryption = mse.Prefer
	fs.Var(&o.encryption, "encryption", "peer connections of the node's swarms: prefer (MSE/PE handshake offering RC4 and plaintext, RC4 data only with peers that insist; fall back to plaintext; accept both), require (encrypted only, both ways) or off (plaintext only)")
	fs.IntVar(&o.slots, "max-peers", 80, "peer connections of the node, shared among the jobs running (each gets max-peers divided by the jobs running now; one job gets them all)")
	fs.IntVar(&o.maxJobs, "max-jobs", delegate.DefaultServerConfig().MaxJobs, "torrents the node helps with at once, over all coordinators; a coordinator asking for more is told to retry later")
	fs.DurationVar(&o.leave, "leave-timeout", 15*time.Second, "on SIGTERM or Ctrl-C, how long the node may take to leave cleanly: it finishes the pieces it started (for at most 5 s or half of this), ships every finished piece to its coordinators and tells them it is going, so that none is fetched again; a second signal stops it at once")
	fs.BoolVar(&o.verbose, "v", false, "log diagnostics to stderr")
	fs.StringVar(&o.cpuprof, "cpuprofile", "", "write a Go CPU profile of the node's run to this file, complete when it exits (for diagnosing performance)")
	fs.BoolVar(&o.showVersion, "version", false, "print the version and exit")
}

// node is one run of swarmnode: its flags, what checking them found, and
// where it reports.
type node struct {
	o        nodeOpts
	stderr   io.Writer
	key      cluster.Key
	coordPub ed25519.PublicKey // nil: any holder of the cluster key commands the node
	ep       clusteropt.Endpoints
	peerHost string       // the IP of --listen
	log      *slog.Logger // diagnostics (-v)
	nodeLog  *slog.Logger // the delegate server's: its errors show without -v
	dataDir  string
	probes   probes // what --http reports
	// cl is the membership once joinCluster started it: the delegate
	// server's OnSessionLost refreshes it.
	cl atomic.Pointer[cluster.Cluster]
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	o, code, ok := parseArgs(args, stdout, stderr)
	if !ok {
		return code
	}
	n := &node{o: o, stderr: stderr}
	if code := n.configure(getenv); code != 0 {
		return code
	}
	stopProfile, code := n.startProfile()
	if code != 0 {
		return code
	}
	defer stopProfile()
	cleanup, code := n.makeDataDir()
	if code != 0 {
		return code
	}
	defer cleanup()
	stopProbes, code := n.startProbes()
	if code != 0 {
		return code
	}
	defer stopProbes()
	tc, code := n.trackerClient()
	if code != 0 {
		return code
	}
	defer tc.Close()
	srv, serveErr, code := n.startServer(tc)
	if code != 0 {
		return code
	}
	defer srv.Close()
	cl, err := n.joinCluster()
	if err != nil {
		return n.fail("%v", err)
	}
	defer cl.Close()
	return n.serve(ctx, cl, srv, serveErr)
}

// parseArgs parses the command line. When ok is false the run is over:
// help or the version was printed (code 0) or the usage is wrong (code 2).
func parseArgs(args []string, stdout, stderr io.Writer) (o nodeOpts, code int, ok bool) {
	fs := cli.NewFlagSet("swarmnode")
	o.register(fs)
	if _, err := cli.Parse(fs, args, false); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, "%s\n\n", summary)
			cli.Help(stdout, "swarmnode --join ADDR[,ADDR...] --cluster-listen HOST:PORT [FLAGS]", "", fs)
			return o, 0, false
		}
		fmt.Fprintf(stderr, "swarmnode: %v; run 'swarmnode --help' for its flags\n", err)
		return o, 2, false
	}
	if o.showVersion {
		fmt.Fprintf(stdout, "swarmnode %s\n", version)
		return o, 0, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "swarmnode: unexpected argument %q (see --help)\n", fs.Arg(0))
		return o, 2, false
	}
	if len(o.co.JoinList()) == 0 {
		fmt.Fprintln(stderr, "swarmnode: --join ADDR is required: the address of the coordinator or another member")
		return o, 2, false
	}
	if o.leave <= 0 {
		fmt.Fprintf(stderr, "swarmnode: --leave-timeout %v must be positive\n", o.leave)
		return o, 2, false
	}
	if o.slots <= 0 || o.maxJobs <= 0 {
		fmt.Fprintf(stderr, "swarmnode: --max-peers %d and --max-jobs %d must be positive\n", o.slots, o.maxJobs)
		return o, 2, false
	}
	return o, 0, true
}

// startProfile starts --cpuprofile, if given.
func (n *node) startProfile() (stop func(), code int) {
	stop, err := cli.StartCPUProfile(n.o.cpuprof)
	if err != nil {
		return nil, n.fail("--cpuprofile: %v; give a writable path", err)
	}
	return stop, 0
}

// fail prints "swarmnode: WHAT" and returns exit status 1.
func (n *node) fail(format string, a ...any) int {
	fmt.Fprintf(n.stderr, "swarmnode: %s\n", fmt.Sprintf(format, a...))
	return 1
}

// configure reads the keys, the addresses and the logging flags.
func (n *node) configure(getenv func(string) string) int {
	co := &n.o.co
	var err error
	if n.key, err = co.Key(getenv); err != nil {
		return n.fail("%v", err)
	}
	if co.KeyFile != "" {
		if err := cluster.CheckKeyFileMode(co.KeyFile); err != nil {
			fmt.Fprintf(n.stderr, "swarmnode: warning: %v\n", err)
		}
	}
	if n.coordPub, err = delegate.LoadCoordinatorPubKey(co.CoordinatorPubKeyFile, getenv); err != nil {
		return n.fail("%v", err)
	}
	if n.coordPub == nil {
		fmt.Fprintf(n.stderr, "swarmnode: warning: no coordinator public key (--coordinator-pubkey-file or $%s): "+
			"any holder of the cluster key can command this node\n", delegate.CoordinatorPubKeyEnv)
	}
	if n.ep, err = co.Endpoints(); err != nil {
		return n.fail("%v", err)
	}
	if n.peerHost, _, err = net.SplitHostPort(n.o.listen); err != nil {
		return n.fail("--listen %q is not HOST:PORT", n.o.listen)
	}
	n.log = slog.New(slog.DiscardHandler)
	// The delegate server's errors are faults the operator must act on
	// (a full disk): shown without -v too. (Gossip's errors are not: a
	// coordinator that went away makes them by the dozen.)
	n.nodeLog = slog.New(slog.NewTextHandler(n.stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	if n.o.verbose {
		n.log = slog.New(slog.NewTextHandler(n.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		n.nodeLog = n.log
	}
	return 0
}

// makeDataDir creates --data, or a temporary directory that cleanup
// removes.
func (n *node) makeDataDir() (cleanup func(), code int) {
	n.dataDir = n.o.data
	if n.dataDir != "" {
		if err := os.MkdirAll(n.dataDir, 0o755); err != nil {
			return nil, n.fail("--data: %v", err)
		}
		return func() {}, 0
	}
	d, err := os.MkdirTemp("", "swarmnode-")
	if err != nil {
		return nil, n.fail("%v", err)
	}
	n.dataDir = d
	return func() { os.RemoveAll(d) }, 0
}

// trackerClient is the client the node's jobs announce through, from
// --listen's IP.
func (n *node) trackerClient() (*tracker.Client, int) {
	tcfg := tracker.DefaultConfig()
	tcfg.Logger = n.log
	bindaddr.Tracker(&tcfg, net.ParseIP(n.peerHost))
	tc, err := tracker.New(tcfg)
	if err != nil {
		return nil, n.fail("%v", err)
	}
	return tc, 0
}

// startServer opens the delegate endpoint and serves coordinators' jobs
// on it; serveErr receives why serving stopped.
func (n *node) startServer(tc *tracker.Client) (srv *delegate.Server, serveErr <-chan error, code int) {
	dln, err := net.Listen("tcp", n.ep.DelegateBind)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, n.fail("cannot listen on %s for the delegate endpoint: port in use", n.ep.DelegateBind)
		}
		return nil, nil, n.fail("delegate endpoint: %v", err)
	}
	n.ep = n.ep.WithDelegatePort(dln.Addr().(*net.TCPAddr).Port)
	scfg := delegate.DefaultServerConfig()
	scfg.Key, scfg.Name, scfg.Listener, scfg.DataDir, scfg.Logger = n.key, n.o.name, dln, n.dataDir, n.nodeLog
	scfg.CoordinatorPubKey = n.coordPub
	scfg.PeerListen = net.JoinHostPort(n.peerHost, "0")
	scfg.Swarm.MaxPeers, scfg.Swarm.Encryption = n.o.slots, n.o.encryption
	scfg.MaxJobs, scfg.MaxJobsPerSession = n.o.maxJobs, n.o.maxJobs
	scfg.LeaveGrace = min(scfg.LeaveGrace, n.o.leave/2)
	scfg.OnJob = func(j delegate.JobInfo) func() { return announceJob(tc, j, n.log, n.stderr) }
	// A lost session may be a coordinator restarted on the same address:
	// it does not know this node until a state exchange, so make one now
	// (and keep trying while it is down) rather than at the next
	// push/pull; it then finds the node, and its kept pieces, at once.
	scfg.OnSessionLost = func(coord string) {
		if c := n.cl.Load(); c != nil {
			n.log.Debug("coordinator session lost; announcing this node again", "coordinator", coord)
			c.Refresh(time.Minute)
		}
	}
	srv, err = delegate.NewServer(scfg)
	if err != nil {
		dln.Close()
		return nil, nil, n.fail("%v", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve() }()
	n.probes.delegateUp.Store(true)
	return srv, errc, 0
}

// joinRetryMax is the longest wait between two join attempts while no
// coordinator answers: a node started before its coordinator must find it
// within a second of its start (issue 15: with 3 s a small download
// lost up to 3 s of every node's share). An attempt that is refused
// costs a TCP connect.
const joinRetryMax = 500 * time.Millisecond

// joinCluster starts the node's membership, advertising its delegate
// endpoint and slots, and says where it gossips.
func (n *node) joinCluster() (*cluster.Cluster, error) {
	ccfg := cluster.DefaultConfig()
	ccfg.Name, ccfg.BindAddr, ccfg.AdvertiseAddr, ccfg.Key, ccfg.Logger = n.o.name, n.ep.GossipBind, n.ep.GossipAdvertise, n.key, n.log
	ccfg.Join = n.o.co.JoinList()
	ccfg.Rejoin = 5 * time.Second
	ccfg.JoinRetry = 250 * time.Millisecond // also Refresh's pace
	ccfg.JoinRetryMax = joinRetryMax
	ccfg.Meta = cluster.Meta{Role: cluster.RoleSwarmNode, DelegateAddr: n.ep.DelegateAdvertise, Version: version, Slots: n.o.slots}
	cl, err := cluster.Start(ccfg)
	if err != nil {
		return nil, err
	}
	n.cl.Store(cl)
	fmt.Fprintf(n.stderr, "swarmnode %s: gossip %s, delegate %s; joining %s\n", cl.LocalName(), cl.Addr(), n.ep.DelegateAdvertise, n.o.co.Join)
	return cl, nil
}

// serve waits until the node is stopped (exit 0) or its delegate endpoint
// or membership ends (exit 1), saying when it has joined. Stopped, the
// node leaves cleanly: its jobs ship what they finished (leave) before it
// leaves the cluster.
func (n *node) serve(ctx context.Context, cl *cluster.Cluster, srv *delegate.Server, serveErr <-chan error) int {
	joined := cl.Joined()
	events := cl.Events()
	for {
		select {
		case <-ctx.Done():
			n.probes.stopping.Store(true)
			n.leave(srv)
			cl.Leave(2 * time.Second)
			return 0
		case err := <-serveErr:
			n.probes.delegateUp.Store(false)
			return n.fail("delegate endpoint stopped: %v", err)
		case <-joined:
			joined = nil
			n.probes.joined.Store(true)
			fmt.Fprintf(n.stderr, "swarmnode: joined the cluster (%d members)\n", len(cl.Members()))
		case ev, ok := <-events:
			if !ok {
				return n.fail("cluster closed")
			}
			n.log.Debug("member", "event", ev.Kind, "name", ev.Member.Name, "role", ev.Member.Meta.Role)
		}
	}
}

// leave ends the node's jobs cleanly (delegate.Server.Leave), within
// --leave-timeout: each finishes the pieces it started, ships what it holds
// and tells its coordinator, which takes its lease back at once. The
// coordinators then stop the sessions when the node leaves the cluster.
func (n *node) leave(srv *delegate.Server) {
	fmt.Fprintf(n.stderr, "swarmnode: stopping: finishing and shipping the jobs' pieces (at most %v; a second signal stops at once)\n", n.o.leave)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), n.o.leave)
	defer cancel()
	st := srv.Leave(ctx)
	if st.Jobs == 0 {
		return
	}
	fmt.Fprintf(n.stderr, "swarmnode: left %d of %d jobs cleanly in %v: %d pieces shipped while leaving (%d in all), %d verified but not shipped\n",
		st.Left, st.Jobs, time.Since(start).Round(time.Millisecond), st.OnLeave, st.Shipped, st.Unshipped)
}

// announceJob announces the node to the job's trackers with its own peer
// id and address, and feeds the peers they return to the job's worker.
func announceJob(tc *tracker.Client, j delegate.JobInfo, log *slog.Logger, stderr io.Writer) func() {
	fmt.Fprintf(stderr, "swarmnode: job %x from %s (%s)\n", j.InfoHash[:6], j.Coordinator, j.Info.Name)
	tcp, ok := j.PeerAddr.(*net.TCPAddr)
	if !ok || len(j.Trackers) == 0 {
		return nil
	}
	ann, err := tc.AddTorrent(tracker.TorrentConfig{
		InfoHash: j.InfoHash,
		Tiers:    j.Trackers,
		ParamsFunc: func() tracker.AnnounceParams {
			up, down, left := j.Stats()
			return tracker.AnnounceParams{PeerID: j.PeerID, Port: uint16(tcp.Port), NumWant: 80,
				Uploaded: up, Downloaded: down, Left: left}
		},
	})
	if err != nil {
		log.Warn("job trackers", "err", err)
		return nil
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		relayPeers(done, ann.Updates(), j.AddPeers, ownPeersHold)
	}()
	return func() {
		close(done)
		<-stopped
		ann.Close()
	}
}

// ownPeersHold is how long after a job starts the peers the node's own
// announces return wait before the node dials them, so that it dials first
// the peers its coordinator dealt it (DESIGN: the sub-chief spreads peers
// across swarms so that nodes do not all crowd the same peers). Were every
// host to dial every peer its tracker names at once, each peer would see
// the whole cluster arrive in the same order: an aria2c seeder accepts three
// connections a second and unchokes three or four peers, so at 8 hosts the
// nodes that joined last got their first data 2-3 s after the first ones
// (issue 15). The coordinator deals a joining node its share of the peers
// it knows, and new ones as they come, so a second costs nothing when it
// knows them; when it knows none, it is the price of its silence.
const ownPeersHold = time.Second

// maxHeldPeers bounds the addresses held during ownPeersHold (a tracker
// sends at most a few hundred per answer, and few answers come that soon).
const maxHeldPeers = 1024

// relayPeers gives add the peers of each announce answer from updates until
// done is closed; answers that come within hold of the start are kept (at
// most maxHeldPeers addresses) and given together once hold has passed.
func relayPeers(done <-chan struct{}, updates <-chan tracker.Update, add func([]netip.AddrPort), hold time.Duration) {
	release := time.NewTimer(hold)
	defer release.Stop()
	holding := true
	var held []netip.AddrPort
	for {
		select {
		case <-done:
			return
		case <-release.C:
			holding = false
			if len(held) > 0 {
				add(held)
				held = nil
			}
		case u := <-updates:
			if u.Response == nil {
				continue
			}
			addrs := make([]netip.AddrPort, 0, len(u.Response.Peers))
			for _, p := range u.Response.Peers {
				addrs = append(addrs, p.Addr)
			}
			if !holding {
				add(addrs)
				continue
			}
			held = append(held, addrs[:min(len(addrs), maxHeldPeers-len(held))]...)
		}
	}
}
