// Command swarmnode is a Flotilla swarm node: it joins a cluster, takes
// jobs from coordinators over an authenticated delegate session and
// downloads its leases of pieces with its own peer swarm, streaming the
// verified pieces back. It announces itself to each job's trackers with its
// own peer id and address, and uploads what it holds like any client.
//
// All logic is in run (tested in-process); main supplies the process's
// arguments, streams, signals and exit status.
package main

import (
	"context"
	"errors"
	"flag"
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

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := cli.NewFlagSet("swarmnode")
	var co clusteropt.Options
	co.Register(fs, "comma-separated HOST[:PORT] of cluster members to join (a DNS name may resolve to many); required")
	co.RegisterCoordinatorPubKey(fs)
	listen := fs.String("listen", "0.0.0.0:0", "BitTorrent peer address of the node's swarms: each job listens on this IP (port 0: a free port per job)")
	data := fs.String("data", "", "directory for the pieces of running jobs, one per node (default: a temporary directory, removed on exit); files a killed node left there are removed at start")
	name := fs.String("name", "", "this node's name in the cluster (default: hostname@address)")
	slots := fs.Int("max-peers", 80, "peer connections per job")
	verbose := fs.Bool("v", false, "log diagnostics to stderr")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if _, err := cli.Parse(fs, args, false); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, "%s\n\n", summary)
			cli.Help(stdout, "swarmnode --join ADDR[,ADDR...] --cluster-listen HOST:PORT [FLAGS]", "", fs)
			return 0
		}
		fmt.Fprintf(stderr, "swarmnode: %v; run 'swarmnode --help' for its flags\n", err)
		return 2
	}
	if *showVersion {
		fmt.Fprintf(stdout, "swarmnode %s\n", version)
		return 0
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "swarmnode: %s\n", fmt.Sprintf(format, a...))
		return 1
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "swarmnode: unexpected argument %q (see --help)\n", fs.Arg(0))
		return 2
	}
	if len(co.JoinList()) == 0 {
		fmt.Fprintln(stderr, "swarmnode: --join ADDR is required: the address of the coordinator or another member")
		return 2
	}
	key, err := co.Key(getenv)
	if err != nil {
		return fail("%v", err)
	}
	if co.KeyFile != "" {
		if err := cluster.CheckKeyFileMode(co.KeyFile); err != nil {
			fmt.Fprintf(stderr, "swarmnode: warning: %v\n", err)
		}
	}
	coordPub, err := delegate.LoadCoordinatorPubKey(co.CoordinatorPubKeyFile, getenv)
	if err != nil {
		return fail("%v", err)
	}
	if coordPub == nil {
		fmt.Fprintf(stderr, "swarmnode: warning: no coordinator public key (--coordinator-pubkey-file or $%s): "+
			"any holder of the cluster key can command this node\n", delegate.CoordinatorPubKeyEnv)
	}
	ep, err := co.Endpoints()
	if err != nil {
		return fail("%v", err)
	}
	peerHost, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return fail("--listen %q is not HOST:PORT", *listen)
	}
	log := slog.New(slog.DiscardHandler)
	// The delegate server's errors are faults the operator must act on
	// (a full disk): shown without -v too. (Gossip's errors are not: a
	// coordinator that went away makes them by the dozen.)
	nodeLog := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	if *verbose {
		log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		nodeLog = log
	}
	dataDir := *data
	if dataDir == "" {
		d, err := os.MkdirTemp("", "swarmnode-")
		if err != nil {
			return fail("%v", err)
		}
		defer os.RemoveAll(d)
		dataDir = d
	} else if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fail("--data: %v", err)
	}

	dln, err := net.Listen("tcp", ep.DelegateBind)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fail("cannot listen on %s for the delegate endpoint: port in use", ep.DelegateBind)
		}
		return fail("delegate endpoint: %v", err)
	}
	ep = ep.WithDelegatePort(dln.Addr().(*net.TCPAddr).Port)

	tcfg := tracker.DefaultConfig()
	tcfg.Logger = log
	bindaddr.Tracker(&tcfg, net.ParseIP(peerHost))
	tc, err := tracker.New(tcfg)
	if err != nil {
		dln.Close()
		return fail("%v", err)
	}
	defer tc.Close()

	scfg := delegate.DefaultServerConfig()
	scfg.Key, scfg.Name, scfg.Listener, scfg.DataDir, scfg.Logger = key, *name, dln, dataDir, nodeLog
	scfg.CoordinatorPubKey = coordPub
	scfg.PeerListen = net.JoinHostPort(peerHost, "0")
	scfg.Swarm.MaxPeers = *slots
	scfg.OnJob = func(j delegate.JobInfo) func() { return announceJob(tc, j, log, stderr) }
	// A lost session may be a coordinator restarted on the same address:
	// it does not know this node until a state exchange, so make one now
	// (and keep trying while it is down) rather than at the next
	// push/pull; it then finds the node, and its kept pieces, at once.
	var clp atomic.Pointer[cluster.Cluster]
	scfg.OnSessionLost = func(coord string) {
		if c := clp.Load(); c != nil {
			log.Debug("coordinator session lost; announcing this node again", "coordinator", coord)
			c.Refresh(time.Minute)
		}
	}
	srv, err := delegate.NewServer(scfg)
	if err != nil {
		dln.Close()
		return fail("%v", err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve() }()
	defer srv.Close()

	ccfg := cluster.DefaultConfig()
	ccfg.Name, ccfg.BindAddr, ccfg.AdvertiseAddr, ccfg.Key, ccfg.Logger = *name, ep.GossipBind, ep.GossipAdvertise, key, log
	ccfg.Join = co.JoinList()
	ccfg.Rejoin = 5 * time.Second
	ccfg.JoinRetry = 250 * time.Millisecond // also Refresh's pace
	ccfg.JoinRetryMax = 3 * time.Second     // find a coordinator soon after it starts
	ccfg.Meta = cluster.Meta{Role: cluster.RoleSwarmNode, DelegateAddr: ep.DelegateAdvertise, Version: version, Slots: *slots}
	cl, err := cluster.Start(ccfg)
	if err != nil {
		return fail("%v", err)
	}
	defer cl.Close()
	clp.Store(cl)
	fmt.Fprintf(stderr, "swarmnode %s: gossip %s, delegate %s; joining %s\n", cl.LocalName(), cl.Addr(), ep.DelegateAdvertise, co.Join)

	joined := cl.Joined()
	events := cl.Events()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(stderr, "swarmnode: stopping")
			cl.Leave(2 * time.Second)
			return 0
		case err := <-serveErr:
			return fail("delegate endpoint stopped: %v", err)
		case <-joined:
			joined = nil
			fmt.Fprintf(stderr, "swarmnode: joined the cluster (%d members)\n", len(cl.Members()))
		case ev, ok := <-events:
			if !ok {
				return fail("cluster closed")
			}
			log.Debug("member", "event", ev.Kind, "name", ev.Member.Name, "role", ev.Member.Meta.Role)
		}
	}
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
		for {
			select {
			case <-done:
				return
			case u := <-ann.Updates():
				if u.Response == nil {
					continue
				}
				addrs := make([]netip.AddrPort, 0, len(u.Response.Peers))
				for _, p := range u.Response.Peers {
					addrs = append(addrs, p.Addr)
				}
				j.AddPeers(addrs)
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
		ann.Close()
	}
}
