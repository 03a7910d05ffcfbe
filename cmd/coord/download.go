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
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"flotilla/cluster"
	"flotilla/coordinator"
	"flotilla/delegate"
	"flotilla/internal/bindaddr"
	"flotilla/internal/clusteropt"
	"flotilla/metainfo"
	"flotilla/piecestore"
	"flotilla/swarm"
	"flotilla/tracker"
	"flotilla/watchdog"
)

// exitInterrupted is the status of a download stopped by a signal.
const exitInterrupted = 130

// transferOpts are the flags shared by download and seed.
type transferOpts struct {
	listen   string
	maxPeers int
	peers    string
	verbose  bool
	progress string
	logEvery time.Duration
	verify   bool
	sparse   bool
	directIO bool
	cpuprof  string
	cluster  clusteropt.Options
}

func (o *transferOpts) register(fs *flag.FlagSet) {
	fs.StringVar(&o.listen, "listen", "0.0.0.0:6881", "TCP address to accept peer connections on (and whose port is announced); port 0 picks a free one")
	fs.IntVar(&o.maxPeers, "max-peers", 80, "most peer connections at once")
	fs.StringVar(&o.peers, "peer", "", "comma-separated HOST:PORT peers to connect to besides those the trackers give")
	fs.BoolVar(&o.verbose, "v", false, "log diagnostics to stderr")
	fs.StringVar(&o.progress, "progress", "auto", "progress display: auto (a bar on a terminal, else a log line every --log-interval), bar, log or none")
	o.cluster.Register(fs, "comma-separated HOST[:PORT] of cluster members to join (optional: swarm nodes usually join the coordinator)")
	o.cluster.RegisterCoordinatorKey(fs)
	fs.BoolVar(&o.directIO, "direct-io", true, "write verified pieces with O_DIRECT where the file system supports it, past the page cache (--direct-io=false: through the page cache)")
	fs.BoolVar(&o.sparse, "sparse", false, "create files sparse instead of reserving their space up front (a full disk then shows up mid-download rather than at start)")
	fs.StringVar(&o.cpuprof, "cpuprofile", "", "write a Go CPU profile of the run to this file (for diagnosing performance)")
	fs.DurationVar(&o.logEvery, "log-interval", 5*time.Second, "time between progress lines when the display is a log")
}

func runDownload(ctx context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet("download", "TORRENT",
		"Downloads TORRENT from its swarm until every piece is verified and written to disk, then\n"+
			"exits 0 and prints where the files are. Interrupted (Ctrl-C), it announces \"stopped\",\n"+
			"flushes what it verified and exits 130; the same command resumes without fetching\n"+
			"verified pieces again.",
		env)
	var o transferOpts
	o.register(fs.FlagSet)
	out := fs.String("out", ".", "directory to write the torrent's files into (created if missing)")
	seed := fs.Bool("seed", false, "keep seeding after the download completes, until interrupted")
	fs.BoolVar(&o.verify, "verify", false, "re-hash the data already on disk before starting instead of trusting the resume record")
	pos, err := fs.parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintln(env.stderr, "coord download: expected exactly one TORRENT argument (see --help)")
		return 2
	}
	return transfer(ctx, env, "download", pos[0], *out, *seed, o)
}

func runSeed(ctx context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet("seed", "TORRENT --data DIR",
		"Verifies the torrent's data under DIR and seeds it until interrupted. Missing or damaged\n"+
			"pieces are downloaded first.",
		env)
	var o transferOpts
	o.register(fs.FlagSet)
	data := fs.String("data", "", "directory holding the torrent's files (as `coord download --out` writes them)")
	pos, err := fs.parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	if len(pos) != 1 || *data == "" {
		fmt.Fprintln(env.stderr, "coord seed: expected TORRENT and --data DIR (see --help)")
		return 2
	}
	o.verify = true
	return transfer(ctx, env, "seed", pos[0], *data, true, o)
}

// session is one torrent being downloaded or seeded: the coordinator's
// main loop and the three entities it talks to (DESIGN points 6 and 9) —
// the tracker pipelines (ann), the watchdog (wd) and the sub-chief (dl) —
// plus, in a cluster, the membership that tells it where swarm nodes are.
type session struct {
	env     *cmdEnv
	name    string
	t       *metainfo.Torrent
	dir     string
	seed    bool
	log     *slog.Logger
	dl      *swarm.Download
	ann     *tracker.Announcer // nil when the torrent lists no trackers
	wd      *watchdog.Watchdog
	prog    *progress
	cluster *clusterLink // nil when not in a cluster

	// Tracker health, for the warning when none answers (loop's own).
	health *coordinator.TrackerHealth
}

// transfer sets up a session and runs its main loop. It returns the exit
// status.
func transfer(ctx context.Context, env *cmdEnv, name, torrentPath, dir string, seed bool, o transferOpts) (code int) {
	w := env.stderr
	t := loadTorrent(w, name, torrentPath)
	if t == nil {
		return 1
	}
	direct, err := parsePeers(o.peers)
	if err != nil {
		return failf(w, name, "give peers as HOST:PORT,HOST:PORT", "--peer: %v", err)
	}
	if o.maxPeers <= 0 {
		return failf(w, name, "give a positive number (the default is 80)", "--max-peers %d is not a number of connections", o.maxPeers)
	}
	// Trackers are checked before anything is created on disk: a torrent
	// whose only tracker is unusable is refused, an unusable one beside
	// others is skipped with a warning.
	tiers := usableTiers(w, name, t)
	if len(tiers) == 0 && len(direct) == 0 {
		if len(t.Tiers()) == 0 {
			return failf(w, name, "give peers to connect to with --peer HOST:PORT",
				"%s lists no trackers and no --peer was given: there is nobody to download from", torrentPath)
		}
		return failf(w, name, "give peers to connect to with --peer HOST:PORT, or use a torrent with an http(s) or udp tracker",
			"%s lists no usable tracker and no --peer was given: there is nobody to download from", torrentPath)
	}
	var key cluster.Key
	if o.cluster.Enabled() {
		if key, err = o.cluster.Key(env.getenv); err != nil {
			return failErr(w, name, "", err)
		}
		if o.cluster.KeyFile != "" {
			if err := cluster.CheckKeyFileMode(o.cluster.KeyFile); err != nil {
				fmt.Fprintf(w, "coord %s: warning: %v; restrict it with chmod 600 %s\n", name, err, o.cluster.KeyFile)
			}
		}
		if o.cluster.CoordinatorKey, err = delegate.LoadCoordinatorKey(o.cluster.CoordinatorKeyFile, env.getenv); err != nil {
			return failf(w, name, "check --coordinator-key-file, or make a key with `coord keygen --coordinator coordinator.key > coordinator.pub`", "%v", err)
		}
		if o.cluster.CoordinatorKey == nil {
			fmt.Fprintf(env.stderr, "coord %s: warning: no coordinator key (--coordinator-key-file or $%s): using one derived from the cluster key, "+
				"so any cluster member could command the swarm nodes; make one with `coord keygen --coordinator coordinator.key > coordinator.pub`\n",
				name, delegate.CoordinatorKeyEnv)
		}
	}
	// Room for the data? Checked before anything is created; --sparse
	// only warns (the download then stops where the disk fills).
	var se *piecestore.SpaceError
	if errors.As(piecestore.CheckSpace(dir, t.Info), &se) {
		if !o.sparse {
			return failErr(w, name, "", se)
		}
		fmt.Fprintf(w, "coord %s: warning: the torrent needs %s more under %s and only %s is free there; with --sparse the download starts anyway and stops when the disk is full\n",
			name, piecestore.FormatBytes(se.Need), se.Dir, piecestore.FormatBytes(se.Free))
	}
	if err := checkWritableDir(dir); err != nil {
		return failf(w, name, "choose another directory with --out, or fix its permissions", "output directory: %v", err)
	}
	// The progress display draws nothing until its first update; until
	// finish, whatever else goes to stderr (log lines, cluster messages)
	// is written through it so that it lands above a live display.
	prog := newProgress(env, o.progress, o.logEvery, t)
	defer prog.finish()
	log := slog.New(slog.DiscardHandler)
	if o.verbose {
		log = slog.New(slog.NewTextHandler(prog, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}

	if o.cpuprof != "" {
		f, err := os.Create(o.cpuprof)
		if err != nil {
			return failf(w, name, "give a writable path to --cpuprofile", "--cpuprofile: %v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return failf(w, name, "give a writable path to --cpuprofile", "--cpuprofile: %v", err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}

	// Everything opened below is closed in reverse order on the way out:
	// the swarm stops handing pieces to the store, the store flushes and
	// records, the trackers hear "stopped".
	var closers []func() error
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			if err := closers[i](); err != nil && code == 0 {
				code = failErr(w, name, "", err)
			}
		}
	}()

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return failf(w, name, "choose another with --listen (port 0 picks a free one)", "cannot listen on %s: the port is in use", o.listen)
		}
		return failf(w, name, "choose another address with --listen", "cannot listen on %s: %v", o.listen, err)
	}
	closers = append(closers, func() error { ln.Close(); return nil })
	lnAddr := ln.Addr().(*net.TCPAddr)

	scfg := piecestore.DefaultConfig()
	scfg.Dir, scfg.Info, scfg.InfoHash, scfg.Logger = dir, t.Info, t.InfoHash, log
	scfg.Preallocate = !o.sparse
	scfg.DirectIO = o.directIO
	inFlight, writeBudget := pieceMemory(t.Info.PieceLength, env.getenv("GOMEMLIMIT") == "")
	scfg.WriteBudget = writeBudget
	scfg.CheckProgress = checkProgress(prog, dir)
	opened := time.Now()
	store, err := piecestore.Open(scfg)
	if err != nil {
		return failErr(w, name, "", err)
	}
	closers = append(closers, store.Close)
	if n := store.Stats().CheckedAtOpen; n > 0 {
		fmt.Fprintf(prog, "found %d of %d pieces already on disk (checked %d pieces in %.2f s)\n",
			store.Stats().PiecesComplete, t.Info.NumPieces(), n, time.Since(opened).Seconds())
	}
	// Open has just hashed every piece when there was no record (a first
	// seed): verifying again would only double the wait.
	if o.verify && store.Stats().CheckedAtOpen < int64(t.Info.NumPieces()) {
		fmt.Fprintf(env.stderr, "verifying %s under %s...\n", t.Info.Name, dir)
		if err := store.Verify(ctx, nil); err != nil {
			if ctx.Err() != nil {
				fmt.Fprintln(w, interruptedMessage(name, seed))
				return exitInterrupted
			}
			return failErr(w, name, "verify", err)
		}
	}

	wd, err := watchdog.New(watchdog.DefaultConfig())
	if err != nil {
		return failErr(w, name, "", err)
	}
	closers = append(closers, wd.Close)

	peerID := newPeerID()
	dcfg := swarm.DefaultConfig()
	dcfg.InfoHash, dcfg.Info, dcfg.PeerID = t.InfoHash, t.Info, peerID
	dcfg.Storage, dcfg.Listener, dcfg.MaxPeers, dcfg.Seed = store, ln, o.maxPeers, seed
	dcfg.Watchdog, dcfg.Logger = wd, log
	dcfg.MaxInFlightBytes = inFlight
	dl, err := swarm.New(dcfg)
	if err != nil {
		return failErr(w, name, "", err)
	}
	closers = append(closers, dl.Close)
	s := &session{env: env, name: name, t: t, dir: dir, seed: seed, log: log, dl: dl, wd: wd}

	if len(tiers) > 0 {
		tcfg := tracker.DefaultConfig()
		tcfg.Watchdog, tcfg.Logger = wd, log
		bindaddr.Tracker(&tcfg, lnAddr.IP)
		tc, err := tracker.New(tcfg)
		if err != nil {
			return failErr(w, name, "trackers", err)
		}
		closers = append(closers, tc.Close)
		annKey := randomKey()
		s.ann, err = tc.AddTorrent(tracker.TorrentConfig{
			InfoHash: t.InfoHash,
			Tiers:    tiers,
			ParamsFunc: func() tracker.AnnounceParams {
				up, down, left := dl.Stats()
				return tracker.AnnounceParams{PeerID: peerID, Port: uint16(lnAddr.Port), Key: annKey, NumWant: 80,
					Uploaded: up, Downloaded: down, Left: left}
			},
		})
		if err != nil && len(direct) == 0 {
			return failErr(w, name, "trackers", err)
		}
		if s.ann != nil {
			closers = append(closers, s.ann.Close)
		}
	}
	if len(direct) > 0 {
		dl.AddPeers(direct)
	}

	if o.cluster.Enabled() {
		o.cluster.Slots = o.maxPeers // advertised as the coordinator's capacity
		s.cluster, err = startClusterLink(o.cluster, key, t, lnAddr, log, prog)
		if err != nil {
			return failErr(w, name, "cluster", err)
		}
		closers = append(closers, s.cluster.close)
		fmt.Fprintf(prog, "cluster: gossip on %s as %s; swarm nodes that join get work\n",
			s.cluster.c.Addr(), s.cluster.c.LocalName())
	}

	s.prog = prog
	code = s.loop(ctx)
	s.prog.finish()
	return code
}

// loop is the coordinator's main loop: it waits for tracker updates,
// watchdog alerts, membership changes and the sub-chief's completion, and
// polls the sub-chief's status without blocking.
func (s *session) loop(ctx context.Context) int {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	started := time.Now()
	s.health = coordinator.NewTrackerHealth(started, trackerSilentAfter, trackerWarnEvery)
	complete := s.dl.Complete()
	var updates <-chan tracker.Update
	if s.ann != nil {
		updates = s.ann.Updates()
	}
	var members <-chan cluster.Event
	var dialed <-chan dialResult
	if s.cluster != nil {
		members, dialed = s.cluster.c.Events(), s.cluster.dialed
	}
	for {
		select {
		case <-ctx.Done():
			s.prog.finish()
			fmt.Fprintln(s.env.stderr, interruptedMessage(s.name, s.seed && complete == nil || s.name == "seed"))
			return exitInterrupted
		case u := <-updates:
			s.trackerUpdate(u)
		case a := <-s.wd.Alerts():
			s.log.Debug("overdue", "kind", a.Packet.Kind, "owner", a.Packet.Owner, "late", a.Late)
		case ev := <-members:
			s.cluster.memberEvent(ev)
		case r := <-dialed:
			s.cluster.dialDone(r, s.dl)
		case <-complete:
			complete = nil
			if s.ann != nil {
				s.ann.Completed()
			}
			st := s.dl.Status()
			s.prog.update(st)
			s.prog.finish()
			if s.cluster != nil {
				s.cluster.stopRemotes()
			}
			if !s.seed {
				took := time.Since(started)
				fmt.Fprintf(s.env.stdout, "downloaded %s (%s) to %s; received %d bytes from peers in %s (%s/s)\n",
					s.t.Info.Name, humanBytes(s.t.Info.Length), filepath.Join(s.dir, s.t.Info.Name), st.Downloaded,
					took.Round(time.Millisecond), humanBytes(int64(float64(st.Downloaded)/took.Seconds())))
				printWorkers(s.env.stdout, st)
				if !st.FirstRequest.IsZero() {
					from := s.env.started
					if from.IsZero() {
						from = started
					}
					fmt.Fprintf(s.env.stdout, "first block requested %s after start", st.FirstRequest.Sub(from).Round(time.Millisecond))
					if u := st.FirstPeer; !u.IsZero() && !u.After(st.FirstRequest) {
						fmt.Fprintf(s.env.stdout, ", %s after the first peer's handshake (%s after start)",
							st.FirstRequest.Sub(u).Round(time.Microsecond), u.Sub(from).Round(time.Millisecond))
					}
					fmt.Fprintln(s.env.stdout)
				}
				return 0
			}
			fmt.Fprintf(s.env.stderr, "complete: %s; seeding until interrupted\n", filepath.Join(s.dir, s.t.Info.Name))
		case now := <-tick.C:
			st := s.dl.Status()
			if st.Err != nil && !errors.Is(st.Err, swarm.ErrClosed) {
				s.prog.finish()
				return failErr(s.env.stderr, s.name, "", st.Err)
			}
			s.prog.update(st)
			s.warnIfNoTracker(now, st)
			if s.cluster != nil && complete != nil {
				s.cluster.tick(now, st)
			}
		}
	}
}

func (s *session) trackerUpdate(u tracker.Update) {
	s.health.Record(u, time.Now())
	if u.Err != nil {
		s.log.Debug("tracker", "url", u.URL, "err", u.Err)
		return
	}
	if u.Response == nil {
		return
	}
	s.log.Debug("tracker answered", "url", u.URL, "event", u.Event, "peers", len(u.Response.Peers), "took", u.Took)
	if len(u.Response.Peers) == 0 {
		return
	}
	addrs := make([]netip.AddrPort, 0, len(u.Response.Peers))
	for _, p := range u.Response.Peers {
		addrs = append(addrs, p.Addr)
	}
	s.dl.AddPeers(addrs)
}

// warnIfNoTracker warns, through the progress display, when no tracker
// answers and there are no peers (see coordinator.TrackerHealth). The trackers
// keep retrying on their own back-off meanwhile.
func (s *session) warnIfNoTracker(now time.Time, st swarm.Status) {
	if s.ann == nil {
		return
	}
	if w, ok := s.health.Warning(now, st.Peers, s.t.Tiers()); ok {
		fmt.Fprintf(s.prog, "coord %s: %s\n", s.name, trackerWarning(w))
	}
}

// interruptedMessage is what coord says when a signal stops it: a
// download resumes with the same command; seeding just stops.
func interruptedMessage(cmd string, seeding bool) string {
	if seeding {
		return "coord " + cmd + ": interrupted; stopped seeding"
	}
	return "coord " + cmd + ": interrupted; run the same command to resume (verified pieces are kept)"
}

// usableTiers returns the torrent's tracker tiers without the URLs that
// cannot be announced to, printing a warning that names each one and why.
func usableTiers(w io.Writer, cmd string, t *metainfo.Torrent) [][]string {
	var out [][]string
	for _, tier := range t.Tiers() {
		var keep []string
		for _, u := range tier {
			if err := metainfo.CheckTrackerURL(u); err != nil {
				fmt.Fprintf(w, "coord %s: warning: %s; that tracker is skipped\n", cmd, strings.TrimPrefix(err.Error(), "metainfo: "))
				continue
			}
			keep = append(keep, u)
		}
		if len(keep) > 0 {
			out = append(out, keep)
		}
	}
	return out
}

// printWorkers says how much each swarm contributed, when there were
// several.
func printWorkers(w io.Writer, st swarm.Status) {
	if len(st.Workers) < 2 {
		return
	}
	for _, wk := range st.Workers {
		fmt.Fprintf(w, "  %-24s %5d pieces  %s received  %d hash failures\n", wk.Name, wk.Delivered, humanBytes(wk.Downloaded), wk.HashFails)
	}
}

func parsePeers(s string) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		ap, err := netip.ParseAddrPort(p)
		if err != nil {
			host, port, err2 := net.SplitHostPort(p)
			if err2 != nil {
				return nil, fmt.Errorf("%q is not HOST:PORT", p)
			}
			n, err3 := strconv.ParseUint(port, 10, 16)
			ips, err4 := net.LookupIP(host)
			if err3 != nil || err4 != nil || len(ips) == 0 || n == 0 {
				return nil, fmt.Errorf("%q: cannot resolve", p)
			}
			a, _ := netip.AddrFromSlice(ips[0])
			ap = netip.AddrPortFrom(a.Unmap(), uint16(n))
		}
		out = append(out, ap)
	}
	return out, nil
}

// checkWritableDir creates dir if needed and proves a file can be created
// in it.
func checkWritableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".flotilla-write-test-*")
	if err != nil {
		return fmt.Errorf("%s is not writable: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// pieceBufferMemory is what coord download lets piece buffers take: those
// being downloaded, verified or waiting for Storage (the swarm's
// MaxInFlightBytes, two thirds) plus those queued for writing (the store's
// WriteBudget, one third). With O_DIRECT writes a queue of a few pieces
// keeps the disk busy. It must stay well under the soft memory limit set
// in main: with the live heap at the limit the collector runs every few
// allocations (measured: 550 cycles in one 1 GiB download when 40 MiB of
// buffers were live under the 48 MiB limit).
const pieceBufferMemory = 24 << 20

// pieceMemory splits pieceBufferMemory for a torrent's piece length; with
// pieces too large for it to hold six (four in flight, two queued) it
// grants those six and, if setLimit, raises the soft memory limit to match.
func pieceMemory(pieceLen int64, setLimit bool) (inFlight, writeBudget int64) {
	inFlight = max(pieceBufferMemory*2/3, 4*pieceLen)
	writeBudget = max(pieceBufferMemory/3, 2*pieceLen)
	if over := inFlight + writeBudget - pieceBufferMemory; over > 0 && setLimit {
		debug.SetMemoryLimit(softMemoryLimit + over)
	}
	return inFlight, writeBudget
}
