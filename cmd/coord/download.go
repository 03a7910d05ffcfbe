package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

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
}

func (o *transferOpts) register(fs *flag.FlagSet) {
	fs.StringVar(&o.listen, "listen", "0.0.0.0:6881", "TCP address to accept peer connections on (and whose port is announced); port 0 picks a free one")
	fs.IntVar(&o.maxPeers, "max-peers", 80, "most peer connections at once")
	fs.StringVar(&o.peers, "peer", "", "comma-separated HOST:PORT peers to connect to besides those the trackers give")
	fs.BoolVar(&o.verbose, "v", false, "log diagnostics to stderr")
	fs.StringVar(&o.progress, "progress", "auto", "progress display: auto (a bar on a terminal, else a log line every --log-interval), bar, log or none")
	fs.DurationVar(&o.logEvery, "log-interval", 5*time.Second, "time between progress lines when the display is a log")
}

func runDownload(ctx context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet("download", "TORRENT",
		"Downloads TORRENT from its swarm until every piece is verified and written to disk, then\n"+
			"exits 0 and prints where the files are. Interrupted (Ctrl-C), it announces \"stopped\",\n"+
			"flushes what it verified and exits 130; the same command resumes without fetching\n"+
			"verified pieces again.",
		env.stderr)
	var o transferOpts
	o.register(fs)
	out := fs.String("out", ".", "directory to write the torrent's files into (created if missing)")
	seed := fs.Bool("seed", false, "keep seeding after the download completes, until interrupted")
	fs.BoolVar(&o.verify, "verify", false, "re-hash the data already on disk before starting instead of trusting the resume record")
	pos, err := parseInterspersed(fs, args)
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
		env.stderr)
	var o transferOpts
	o.register(fs)
	data := fs.String("data", "", "directory holding the torrent's files (as `coord download --out` writes them)")
	pos, err := parseInterspersed(fs, args)
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

// transfer is the coordinator's main loop for one torrent: it wires the
// watchdog, the tracker pipelines and the swarm sub-chief, and talks only
// to those three (DESIGN points 6 and 9).
func transfer(ctx context.Context, env *cmdEnv, name, torrentPath, dir string, seed bool, o transferOpts) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(env.stderr, "coord %s: %s\n", name, fmt.Sprintf(format, a...))
		return 1
	}
	t, err := metainfo.Load(torrentPath)
	if err != nil {
		return fail("%v", err)
	}
	direct, err := parsePeers(o.peers)
	if err != nil {
		return fail("--peer: %v", err)
	}
	if len(t.Tiers()) == 0 && len(direct) == 0 {
		return fail("%s lists no trackers and no --peer was given: there is nobody to download from", torrentPath)
	}
	if o.maxPeers <= 0 {
		return fail("--max-peers must be positive")
	}
	if err := checkWritableDir(dir); err != nil {
		return fail("output directory: %v", err)
	}
	log := slog.New(slog.DiscardHandler)
	if o.verbose {
		log = slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fail("cannot listen on %s: the port is in use (choose another with --listen)", o.listen)
		}
		return fail("cannot listen on %s: %v", o.listen, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port

	scfg := piecestore.DefaultConfig()
	scfg.Dir, scfg.Info, scfg.InfoHash, scfg.Logger = dir, t.Info, t.InfoHash, log
	store, err := piecestore.Open(scfg)
	if err != nil {
		ln.Close()
		return fail("%v", err)
	}
	closeStore := func() error { return store.Close() }
	if o.verify {
		fmt.Fprintf(env.stderr, "verifying %s under %s...\n", t.Info.Name, dir)
		if err := store.Verify(ctx, nil); err != nil {
			ln.Close()
			closeStore()
			if ctx.Err() != nil {
				fmt.Fprintln(env.stderr, "interrupted")
				return exitInterrupted
			}
			return fail("verify: %v", err)
		}
	}

	wd, err := watchdog.New(watchdog.DefaultConfig())
	if err != nil {
		ln.Close()
		closeStore()
		return fail("%v", err)
	}
	defer wd.Close()

	peerID := newPeerID()
	dcfg := swarm.DefaultConfig()
	dcfg.InfoHash, dcfg.Info, dcfg.PeerID = t.InfoHash, t.Info, peerID
	dcfg.Storage, dcfg.Listener, dcfg.MaxPeers, dcfg.Seed = store, ln, o.maxPeers, seed
	dcfg.Watchdog, dcfg.Logger = wd, log
	dl, err := swarm.New(dcfg)
	if err != nil {
		ln.Close()
		closeStore()
		return fail("%v", err)
	}

	tcfg := tracker.DefaultConfig()
	tcfg.Watchdog, tcfg.Logger = wd, log
	bindTrackerSource(&tcfg, ln.Addr())
	tc, err := tracker.New(tcfg)
	if err != nil {
		dl.Close()
		closeStore()
		return fail("%v", err)
	}
	key := randomKey()
	ann, err := tc.AddTorrent(tracker.TorrentConfig{
		InfoHash: t.InfoHash,
		Tiers:    t.Tiers(),
		ParamsFunc: func() tracker.AnnounceParams {
			up, down, left := dl.Stats()
			return tracker.AnnounceParams{PeerID: peerID, Port: uint16(port), Key: key, NumWant: 80,
				Uploaded: up, Downloaded: down, Left: left}
		},
	})
	if err != nil {
		dl.Close()
		tc.Close()
		closeStore()
		return fail("%v", err)
	}
	if len(direct) > 0 {
		dl.AddPeers(direct)
	}

	prog := newProgress(env, o.progress, o.logEvery, t)
	code := mainLoop(ctx, env, name, t, dir, seed, dl, ann, wd, prog, log)
	prog.finish()

	// Shut down in dependency order: the swarm stops handing pieces to the
	// store, the store flushes and records, the trackers hear "stopped".
	dl.Close()
	if err := closeStore(); err != nil && code == 0 {
		code = fail("%v", err)
	}
	ann.Close()
	tc.Close()
	return code
}

// mainLoop waits for tracker updates, watchdog alerts and the sub-chief's
// completion, and polls the sub-chief's status without blocking.
func mainLoop(ctx context.Context, env *cmdEnv, name string, t *metainfo.Torrent, dir string, seed bool,
	dl *swarm.Download, ann *tracker.Announcer, wd *watchdog.Watchdog, prog *progress, log *slog.Logger) int {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	started := time.Now()
	complete := dl.Complete()
	announcedDone := false
	for {
		select {
		case <-ctx.Done():
			prog.finish()
			fmt.Fprintf(env.stderr, "coord %s: interrupted; run the same command to resume\n", name)
			return exitInterrupted
		case u := <-ann.Updates():
			if u.Err != nil {
				log.Debug("tracker", "url", u.URL, "err", u.Err)
				continue
			}
			if u.Response != nil {
				log.Debug("tracker answered", "url", u.URL, "event", u.Event, "peers", len(u.Response.Peers), "took", u.Took)
			}
			if u.Response != nil && len(u.Response.Peers) > 0 {
				addrs := make([]netip.AddrPort, 0, len(u.Response.Peers))
				for _, p := range u.Response.Peers {
					addrs = append(addrs, p.Addr)
				}
				dl.AddPeers(addrs)
			}
		case a := <-wd.Alerts():
			log.Debug("overdue", "kind", a.Packet.Kind, "owner", a.Packet.Owner, "late", a.Late)
		case <-complete:
			complete = nil
			if !announcedDone {
				announcedDone = true
				ann.Completed()
			}
			st := dl.Status()
			prog.update(st)
			prog.finish()
			if !seed {
				took := time.Since(started)
				fmt.Fprintf(env.stdout, "downloaded %s (%s) to %s; received %d bytes from peers in %s (%s/s)\n",
					t.Info.Name, humanBytes(t.Info.Length), filepath.Join(dir, t.Info.Name), st.Downloaded,
					took.Round(time.Millisecond), humanBytes(int64(float64(st.Downloaded)/took.Seconds())))
				return 0
			}
			fmt.Fprintf(env.stderr, "complete: %s; seeding until interrupted\n", filepath.Join(dir, t.Info.Name))
		case <-tick.C:
			st := dl.Status()
			if st.Err != nil && !errors.Is(st.Err, swarm.ErrClosed) {
				prog.finish()
				fmt.Fprintf(env.stderr, "coord %s: %v; run the same command to resume once fixed\n", name, st.Err)
				return 1
			}
			prog.update(st)
		}
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

// bindTrackerSource makes the tracker pipelines talk from the address the
// peer listener is bound to, when that is one specific address: trackers
// record the source address of an announce as the peer's address, so on a
// host with several addresses peers would otherwise be sent to the wrong
// one.
func bindTrackerSource(cfg *tracker.Config, listen net.Addr) {
	tcp, ok := listen.(*net.TCPAddr)
	if !ok || tcp.IP.IsUnspecified() {
		return
	}
	local := &net.TCPAddr{IP: tcp.IP}
	if tcp.IP.To4() != nil {
		cfg.UDPListen4 = net.JoinHostPort(tcp.IP.String(), "0")
	} else {
		cfg.UDPListen6 = net.JoinHostPort(tcp.IP.String(), "0")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{LocalAddr: local, Timeout: cfg.HTTPTimeout}).DialContext
	tr.ResponseHeaderTimeout = cfg.HTTPTimeout
	cfg.HTTPClient = &http.Client{Transport: tr, Timeout: cfg.HTTPTimeout}
}
