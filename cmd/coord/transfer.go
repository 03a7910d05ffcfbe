package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"syscall"
	"time"

	"flotilla/cluster"
	"flotilla/coordinator"
	"flotilla/delegate"
	"flotilla/internal/cli"
	"flotilla/internal/clusteropt"
	"flotilla/internal/memlimit"
	"flotilla/metainfo"
	"flotilla/peerwire"
	"flotilla/piecestore"
	"flotilla/swarm"
)

// transferCmd is one run of coord download or coord seed: what its flags
// asked for, what checking them found, and the output it writes to. The
// work itself is a coordinator.Job; transferCmd wires it up and turns its
// events into lines for the user.
type transferCmd struct {
	env  *cmdEnv
	name string // "download" or "seed"
	path string // the .torrent file
	dir  string
	seed bool
	o    transferOpts

	t      *metainfo.Torrent
	direct []netip.AddrPort // --peer
	tiers  [][]string       // the usable tracker tiers
	key    cluster.Key      // with --cluster-*
	prog   *progress
	log    *slog.Logger
	// handover: the connections of a magnet's metadata fetch, for the
	// job to adopt (coordinator.JobConfig.Handover); closed if no job
	// takes them.
	handover []peerwire.Handover
}

// runTransfer downloads (or seeds) the torrent at path into dir and
// returns the exit status.
func runTransfer(ctx context.Context, env *cmdEnv, name, path, dir string, seed bool, o transferOpts) (code int) {
	x := &transferCmd{env: env, name: name, path: path, dir: dir, seed: seed, o: o}
	defer func() {
		for _, h := range x.handover {
			h.Conn.Close()
		}
	}()
	if name == "download" && metainfo.IsMagnet(path) {
		if code := x.resolveMagnet(ctx); code != 0 {
			return code
		}
	}
	if code := x.check(); code != 0 {
		return code
	}
	// The progress display draws nothing until its first update; until
	// finish, whatever else goes to stderr (log lines, cluster messages)
	// is written through it so that it lands above a live display.
	x.prog = newProgress(env, o.progress, o.logEvery, x.t)
	defer x.prog.finish()
	x.log = slog.New(slog.DiscardHandler)
	if o.verbose {
		x.log = slog.New(slog.NewTextHandler(x.prog, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	stopProfile, code := x.startProfile()
	if code != 0 {
		return code
	}
	defer stopProfile()

	// Everything opened below is closed in reverse order on the way out:
	// the job (its nodes' sessions, trackers, which hear "stopped", its
	// sub-chief and its store, which flushes and records), then the
	// coordinator's shared parts.
	dcfg, err := o.dht.config(userDHTState(x.env.getenv))
	if err != nil {
		return failf(x.env.stderr, x.name, "fix the DHT flags", "%v", err)
	}
	c, err := coordinator.New(coordinator.Config{ListenAddr: o.listen, Logger: x.log, DHT: dcfg, Encryption: o.encryption})
	if err != nil {
		return x.listenFailed(err)
	}
	defer x.closeReporting(&code, c.Close)
	job, code := x.openJob(ctx, c)
	if job != nil {
		defer x.closeReporting(&code, job.Close)
	}
	if code != 0 {
		return code
	}
	if code := x.start(c, job); code != 0 {
		return code
	}
	code = x.follow(ctx, job)
	c.Leave() // the goodbye overlaps the job's close (deferred above)
	x.prog.finish()
	return code
}

// closeReporting closes something at the end of a run; an error there
// fails a run that had succeeded.
func (x *transferCmd) closeReporting(code *int, close func() error) {
	if err := close(); err != nil && *code == 0 {
		*code = failErr(x.env.stderr, x.name, "", err)
	}
}

// check reads the torrent and checks the flags, before anything is
// created on disk or on the network.
func (x *transferCmd) check() int {
	w := x.env.stderr
	if x.t = loadTorrent(w, x.name, x.path); x.t == nil {
		return 1
	}
	var err error
	if x.direct, err = parsePeers(x.o.peers); err != nil {
		return failf(w, x.name, "give peers as HOST:PORT,HOST:PORT", "--peer: %v", err)
	}
	if x.o.maxPeers <= 0 {
		return failf(w, x.name, "give a positive number (the default is 80)", "--max-peers %d is not a number of connections", x.o.maxPeers)
	}
	// A torrent whose only tracker is unusable is refused, an unusable one
	// beside others is skipped with a warning.
	x.tiers = usableTiers(w, x.name, x.t)
	if len(x.tiers) == 0 && len(x.direct) == 0 && !(x.o.dht.on && !x.t.Info.Private) {
		if len(x.t.Tiers()) == 0 {
			return failf(w, x.name, "give peers to connect to with --peer HOST:PORT",
				"%s lists no trackers and no --peer was given: there is nobody to download from", x.path)
		}
		return failf(w, x.name, "give peers to connect to with --peer HOST:PORT, or use a torrent with an http(s) or udp tracker",
			"%s lists no usable tracker and no --peer was given: there is nobody to download from", x.path)
	}
	if code := x.checkCluster(); code != 0 {
		return code
	}
	// Room for the data? --sparse only warns (the download then stops
	// where the disk fills).
	var se *piecestore.SpaceError
	if errors.As(piecestore.CheckSpace(x.dir, x.t.Info), &se) {
		if !x.o.sparse {
			return failErr(w, x.name, "", se)
		}
		fmt.Fprintf(w, "coord %s: warning: the torrent needs %s more under %s and only %s is free there; with --sparse the download starts anyway and stops when the disk is full\n",
			x.name, piecestore.FormatBytes(se.Need), se.Dir, piecestore.FormatBytes(se.Free))
	}
	if err := checkWritableDir(x.dir); err != nil {
		return failf(w, x.name, "choose another directory with --out, or fix its permissions", "output directory: %v", err)
	}
	return 0
}

// checkCluster reads the cluster key and the coordinator key when the
// run joins a cluster.
func (x *transferCmd) checkCluster() int {
	w, o := x.env.stderr, &x.o.cluster
	if !o.Enabled() {
		return 0
	}
	var err error
	if x.key, err = o.Key(x.env.getenv); err != nil {
		return failErr(w, x.name, "", err)
	}
	if o.KeyFile != "" {
		if err := cluster.CheckKeyFileMode(o.KeyFile); err != nil {
			fmt.Fprintf(w, "coord %s: warning: %v; restrict it with chmod 600 %s\n", x.name, err, o.KeyFile)
		}
	}
	if o.CoordinatorKey, err = delegate.LoadCoordinatorKey(o.CoordinatorKeyFile, x.env.getenv); err != nil {
		return failf(w, x.name, "check --coordinator-key-file, or make a key with `coord keygen --coordinator coordinator.key > coordinator.pub`", "%v", err)
	}
	if o.CoordinatorKey == nil {
		fmt.Fprintf(w, "coord %s: warning: no coordinator key (--coordinator-key-file or $%s): using one derived from the cluster key, "+
			"so any cluster member could command the swarm nodes; make one with `coord keygen --coordinator coordinator.key > coordinator.pub`\n",
			x.name, delegate.CoordinatorKeyEnv)
	}
	return 0
}

// startProfile starts --cpuprofile, if given.
func (x *transferCmd) startProfile() (stop func(), code int) {
	stop, err := cli.StartCPUProfile(x.o.cpuprof)
	if err != nil {
		return nil, failf(x.env.stderr, x.name, "give a writable path to --cpuprofile", "--cpuprofile: %v", err)
	}
	return stop, 0
}

// listenFailed says why coordinator.New failed.
func (x *transferCmd) listenFailed(err error) int {
	w := x.env.stderr
	var le *coordinator.ListenError
	switch {
	case errors.As(err, &le) && errors.Is(err, syscall.EADDRINUSE):
		return failf(w, x.name, "choose another with --listen (port 0 picks a free one)", "cannot listen on %s: the port is in use", le.Addr)
	case errors.As(err, &le):
		return failf(w, x.name, "choose another address with --listen", "cannot listen on %s: %v", le.Addr, le.Err)
	case errors.Is(err, syscall.EADDRINUSE): // the DHT's UDP port
		return failf(w, x.name, "choose another UDP port with --dht-listen, or turn the DHT off with --dht=false", "%v", err)
	}
	return failErr(w, x.name, "", err)
}

// openJob opens the torrent's job: its store, which may check data already
// on disk, and with --verify re-hashes it. The job is returned whenever it
// was opened, with a non-zero status if a later step failed.
func (x *transferCmd) openJob(ctx context.Context, c *coordinator.Coordinator) (*coordinator.Job, int) {
	w, info := x.env.stderr, x.t.Info
	cfg := coordinator.DefaultJobConfig()
	cfg.Torrent, cfg.Dir, cfg.Tiers, cfg.Seed, cfg.MaxPeers = x.t, x.dir, x.tiers, x.seed, x.o.maxPeers
	cfg.Preallocate, cfg.DirectIO = !x.o.sparse, x.o.directIO
	var over int64
	cfg.MaxInFlightBytes, cfg.WriteBudget, over = pieceMemory(info.PieceLength)
	memlimit.Reserve(over) // for the life of the process
	cfg.CheckProgress = checkProgress(x.prog, x.dir)
	cfg.Handover, x.handover = x.handover, nil // the job owns them now
	opened := time.Now()
	job, err := c.OpenJob(cfg)
	if err != nil {
		return nil, failErr(w, x.name, "", err)
	}
	st := job.StoreStats()
	if st.CheckedAtOpen > 0 {
		fmt.Fprintf(x.prog, "found %d of %d pieces already on disk (checked %d pieces in %.2f s)\n",
			st.PiecesComplete, info.NumPieces(), st.CheckedAtOpen, time.Since(opened).Seconds())
	}
	// Open has just hashed every piece when there was no record (a first
	// seed): verifying again would only double the wait.
	if x.o.verify && st.CheckedAtOpen < int64(info.NumPieces()) {
		fmt.Fprintf(w, "verifying %s under %s...\n", info.Name, x.dir)
		if err := job.Verify(ctx); err != nil {
			if ctx.Err() != nil {
				fmt.Fprintln(w, interruptedMessage(x.name, x.seed))
				return job, exitInterrupted
			}
			return job, failErr(w, x.name, "", err)
		}
	}
	return job, 0
}

// start starts the job with the --peer peers and, with --cluster-*, joins
// the cluster so that swarm nodes get work.
func (x *transferCmd) start(c *coordinator.Coordinator, job *coordinator.Job) int {
	w := x.env.stderr
	if err := job.Start(x.direct); err != nil {
		return failErr(w, x.name, "", err)
	}
	if !x.o.cluster.Enabled() {
		return 0
	}
	x.o.cluster.Slots = x.o.maxPeers // advertised as the coordinator's capacity
	cfg, err := clusterConfig(x.o.cluster, x.key, x.log)
	if err != nil {
		return failErr(w, x.name, "cluster", err)
	}
	me, err := c.JoinCluster(cfg)
	if err != nil {
		return failErr(w, x.name, "", err)
	}
	fmt.Fprintf(x.prog, "cluster: gossip on %s as %s; swarm nodes that join get work\n", me.Addr, me.Name)
	return 0
}

// clusterConfig is how a coordinator joins a cluster: as a coordinator
// advertising o.Slots as its capacity (coord download's --max-peers).
func clusterConfig(o clusteropt.Options, key cluster.Key, log *slog.Logger) (coordinator.ClusterConfig, error) {
	ep, err := o.Endpoints()
	if err != nil {
		return coordinator.ClusterConfig{}, err
	}
	cfg := cluster.DefaultConfig()
	cfg.BindAddr, cfg.AdvertiseAddr, cfg.Key, cfg.Logger = ep.GossipBind, ep.GossipAdvertise, key, log
	cfg.Join = o.JoinList()
	cfg.Meta = cluster.Meta{Role: cluster.RoleCoordinator, Version: version, Slots: o.Slots}
	return coordinator.ClusterConfig{Cluster: cfg, CoordinatorKey: o.CoordinatorKey}, nil
}

// follow shows the job's events until the download is complete (or, when
// seeding, until interrupted) and returns the exit status.
func (x *transferCmd) follow(ctx context.Context, job *coordinator.Job) int {
	started := time.Now()
	completed := false
	for {
		select {
		case <-ctx.Done():
			x.prog.finish()
			fmt.Fprintln(x.env.stderr, interruptedMessage(x.name, x.seed && completed || x.name == "seed"))
			return exitInterrupted
		case ev := <-job.Events():
			switch ev := ev.(type) {
			case coordinator.Progress:
				x.prog.update(ev.Status)
			case coordinator.Completed:
				completed = true
				x.prog.update(ev.Status)
				x.prog.finish()
				if !x.seed {
					x.printDone(ev.Status, started)
					return 0
				}
				fmt.Fprintf(x.env.stderr, "complete: %s; seeding until interrupted\n", filepath.Join(x.dir, x.t.Info.Name))
			case coordinator.Failed:
				x.prog.finish()
				return failErr(x.env.stderr, x.name, "", ev.Err)
			default:
				x.say(ev)
			}
		}
	}
}

// say prints a job's message event through the progress display.
func (x *transferCmd) say(ev coordinator.Event) {
	switch ev := ev.(type) {
	case coordinator.TrackersSilent:
		fmt.Fprintf(x.prog, "coord %s: %s\n", x.name, trackerWarning(ev))
	case coordinator.Overdue:
		fmt.Fprintf(x.prog, "coord %s: %s\n", x.name, overdueLine(ev))
	case coordinator.NodeDialFailed:
		fmt.Fprintf(x.prog, "cluster: swarm node %s (%s): %v\n", ev.Name, ev.Addr, ev.Err)
	case coordinator.NodeQuarantined:
		fmt.Fprintf(x.prog, "cluster: swarm node %s (%s) quarantined for the rest of this download: it delivered pieces that failed verification; check that host (disk, memory, or a compromised cluster key)\n", ev.Name, ev.Identity)
	case coordinator.NodeRefused:
		fmt.Fprintf(x.prog, "cluster: swarm node %s (%s) is not used: a node at these addresses was quarantined earlier in this download for delivering pieces that failed verification\n", ev.Name, ev.Identity)
	}
}

// printDone is the summary of a finished download, on stdout: where the
// files are, how much came from peers and how fast, each swarm's share,
// and how soon the first block was requested.
func (x *transferCmd) printDone(st swarm.Status, started time.Time) {
	out, info := x.env.stdout, x.t.Info
	took := time.Since(started)
	fmt.Fprintf(out, "downloaded %s (%s) to %s; received %d bytes from peers in %s (%s/s)\n",
		info.Name, humanBytes(info.Length), filepath.Join(x.dir, info.Name), st.Downloaded,
		took.Round(time.Millisecond), humanBytes(int64(float64(st.Downloaded)/took.Seconds())))
	printWorkers(out, st)
	if st.FirstRequest.IsZero() {
		return
	}
	from := x.env.started
	if from.IsZero() {
		from = started
	}
	fmt.Fprintf(out, "first block requested %s after start", st.FirstRequest.Sub(from).Round(time.Millisecond))
	if u := st.FirstPeer; !u.IsZero() && !u.After(st.FirstRequest) {
		fmt.Fprintf(out, ", %s after the first peer's handshake (%s after start)",
			st.FirstRequest.Sub(u).Round(time.Microsecond), u.Sub(from).Round(time.Millisecond))
	}
	fmt.Fprintln(out)
}
