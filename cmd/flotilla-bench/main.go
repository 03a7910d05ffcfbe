// Command flotilla-bench measures `coord download` against reference
// BitTorrent clients (aria2c, rain, anacrolix/torrent; Transmission once a
// network-namespace lab exists) on one local swarm: opentracker and N aria2c
// seeders on loopback addresses, a deterministic payload. Every client
// downloads the same torrent several times, interleaved, each time into a
// fresh directory; every result is checked against the payload's SHA-256
// (a wrong result is a FAIL, never a speed). It prints one table of
// medians: wall seconds, MB/s, CPU seconds, peak RSS, and each client's
// ratio to coord.
//
//	go run ./cmd/flotilla-bench [--size 1GiB] [--piece 1MiB] [--seeders 3] [--runs 3]
//	    [--clients coord,aria2c,rain,anacrolix,transmission] [--keep]
//
// With --scaling (root) it runs the cluster benchmark of issue 4 instead
// (scaling.go): the namespace lab of lab.NewCluster, every host's WAN capped
// at --rate Mbit/s, the torrent downloaded by the coordinator alone and with
// 1..--nodes swarm nodes added (a table of wall seconds, MB/s, speed-up,
// coordinator CPU and an output check), then a failover run timing how long a
// dead node's lease takes to return to the pool:
//
//	sudo go run ./cmd/flotilla-bench --scaling [--scenario ladder,failover] [--size 1GiB] [--rate 100] [--nodes 3] [--seeders 3] [--keep]
//
// --scenario picks other scenarios of issue 15 (eight hosts, a small
// download with the nodes already up, ...); each has its own lab, payload
// and table (scenarios.go).
//
// Missing reference clients are installed by scripts/install-reference-clients.sh
// (Debian packages, and rain/anacrolix built from the Go module proxy into
// ./.refbin). With --serve it only builds the swarm, prints where the
// torrent is and keeps the swarm up until interrupted (scripts/demo.sh).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"flotilla/internal/cli"
	"flotilla/internal/lab"
	"flotilla/metainfo"
)

type options struct {
	size, piece   int64
	seeders, runs int
	clients       []string
	keep          bool
	dir, refbin   string
	timeout       time.Duration
	install       bool
	seed          uint64
	serve         bool
	magnet        bool // give every client the magnet link instead of the .torrent
	infoFile      string
	labKind       string
	scaling       bool
	rateMbit      int
	nodes         int
	failoverOnly  bool
	seedLimit     string
	scenarios     []string        // --scenario, in order
	set           map[string]bool // the flags given on the command line
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "flotilla-bench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cl := &lab.Cleanup{}
	defer cl.Run()
	if err := bench(ctx, cl, o, stdout, stderr); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "flotilla-bench: interrupted; everything it started is stopped")
			return 130
		}
		fmt.Fprintln(stderr, "flotilla-bench:", err)
		return 1
	}
	return 0
}

// benchSummary is what --help says flotilla-bench is.
const benchSummary = `flotilla-bench measures Flotilla's coord download against reference BitTorrent
clients (aria2c, rain, anacrolix/torrent, transmission-cli with --lab netns) on
one local swarm: opentracker and aria2c seeders on loopback addresses or network
namespaces, a deterministic payload. Every client downloads the same torrent
--runs times, interleaved; every result is checked by SHA-256. It prints one
table of medians: wall seconds, MB/s, CPU seconds, peak RSS and each client's
ratio to coord. Missing reference clients are installed first
(scripts/install-reference-clients.sh; --no-install to skip).

--scaling (root) runs the cluster benchmark instead: the coordinator alone and
with 1..--nodes swarm nodes in network namespaces, every WAN link capped at
--rate, then a failover run. Root is needed for --lab netns and --scaling; as a
normal user build first and run the binary with sudo:
  go build -o bin/ ./cmd/... && sudo ./bin/flotilla-bench --scaling`

// parseFlags parses the command line; --help prints the help to stdout.
func parseFlags(args []string, stdout io.Writer) (options, error) {
	o := options{}
	fs := cli.NewFlagSet("flotilla-bench")
	size := fs.String("size", "1GiB", "payload size (e.g. 256MiB, 1GiB, 8GiB)")
	piece := fs.String("piece", "1MiB", "piece length, a power of two >= 32KiB")
	fs.IntVar(&o.seeders, "seeders", 3, "number of aria2c seeders, each on its own 127.0.0.x address")
	fs.IntVar(&o.runs, "runs", 3, "downloads per client, interleaved between clients")
	clients := fs.String("clients", strings.Join(knownClients, ","), "clients to measure, comma-separated")
	fs.BoolVar(&o.keep, "keep", false, "keep the lab directory and every download")
	fs.StringVar(&o.dir, "dir", ".bench", "working directory (a fresh subdirectory is made per invocation)")
	fs.StringVar(&o.refbin, "refbin", ".refbin", "where rain and anacrolix-torrent are (installed there if missing)")
	fs.DurationVar(&o.timeout, "timeout", 0, "per-download limit (0: 2 min + 1 s per 10 MB)")
	noInstall := fs.Bool("no-install", false, "do not run scripts/install-reference-clients.sh")
	fs.Uint64Var(&o.seed, "seed", 1, "payload content seed")
	fs.StringVar(&o.labKind, "lab", "loopback", "loopback: every host on 127.0.0.x; netns: every host in its own network\nnamespace behind a bridge (root; needed for transmission-cli)")
	fs.BoolVar(&o.magnet, "magnet", false, "give every client the torrent's magnet link (info-hash and tracker) instead of the .torrent,\nso each run includes fetching the info from the seeders (BEP 9); with --size equal to --piece\nthe time is the time to the first verified piece")
	fs.BoolVar(&o.serve, "serve", false, "only build the swarm and keep it up until interrupted (for the demo)")
	fs.StringVar(&o.seedLimit, "seeder-limit", "", "cap each seeder's upload rate (aria2c syntax, e.g. 8M); default: uncapped")
	fs.StringVar(&o.infoFile, "info-file", "", "with --serve: write the swarm's description here as shell variables")
	fs.BoolVar(&o.scaling, "scaling", false, "the cluster scaling benchmark (root): coord alone, then with 1..--nodes swarm nodes,\nevery host's WAN capped at --rate; then a failover run (see scaling.go)")
	fs.IntVar(&o.rateMbit, "rate", 100, "with --scaling: each host's WAN cap in Mbit/s, both directions")
	fs.IntVar(&o.nodes, "nodes", 3, "with --scaling: the most swarm nodes added to the coordinator")
	fs.BoolVar(&o.failoverOnly, "failover-only", false, "with --scaling: only the failover run (same as --scenario failover)")
	scen := fs.String("scenario", "ladder,failover", "with --scaling: the scenarios to run, comma-separated, each in its own lab\nwith a table of its own: "+scenarioNames())
	pos, err := cli.Parse(fs, args, false)
	if errors.Is(err, flag.ErrHelp) {
		cli.Help(stdout, "flotilla-bench [FLAGS]", benchSummary, fs)
		return o, err
	}
	if err != nil {
		return o, fmt.Errorf("%w; run 'flotilla-bench --help' for its flags", err)
	}
	if len(pos) > 0 {
		return o, fmt.Errorf("unexpected argument %q; run 'flotilla-bench --help' for its flags", pos[0])
	}
	if o.size, err = parseSize(*size); err != nil {
		return o, fmt.Errorf("--size: %w", err)
	}
	if o.piece, err = parseSize(*piece); err != nil {
		return o, fmt.Errorf("--piece: %w", err)
	}
	if o.clients, err = parseClients(*clients); err != nil {
		return o, fmt.Errorf("--clients: %w", err)
	}
	if o.runs < 1 || o.seeders < 1 || o.seeders > 250 {
		return o, fmt.Errorf("--runs must be >= 1 and --seeders 1..250")
	}
	if o.scaling && (o.rateMbit < 1 || o.nodes < 1 || o.nodes > 20) {
		return o, fmt.Errorf("--rate must be >= 1 and --nodes 1..20")
	}
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	if o.scenarios, err = parseScenarios(*scen); err != nil {
		return o, fmt.Errorf("--scenario: %w", err)
	}
	if o.failoverOnly {
		o.scenarios = []string{"failover"}
	}
	if o.labKind != "loopback" && o.labKind != "netns" {
		return o, fmt.Errorf("--lab must be loopback or netns, not %q", o.labKind)
	}
	o.install = !*noInstall
	if o.timeout == 0 {
		o.timeout = 2*time.Minute + time.Duration(o.size/10e6)*time.Second
	}
	return o, nil
}

func bench(ctx context.Context, cl *lab.Cleanup, o options, stdout, stderr io.Writer) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if !filepath.IsAbs(o.dir) {
		o.dir = filepath.Join(root, o.dir)
	}
	if !filepath.IsAbs(o.refbin) {
		o.refbin = filepath.Join(root, o.refbin)
	}
	workDir := filepath.Join(o.dir, time.Now().Format("20060102-150405"))
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return err
	}
	if !o.keep {
		cl.Add(func() { os.RemoveAll(workDir) })
	}
	if o.scaling {
		err := scaling(ctx, cl, o, root, workDir, stdout, stderr)
		if o.keep {
			fmt.Fprintf(stdout, "kept: %s\n", workDir)
		}
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	var cs []*client
	if !o.serve {
		tmpBin, err := os.MkdirTemp("", "flotilla-bench-bin-")
		if err != nil {
			return err
		}
		cl.Add(func() { os.RemoveAll(tmpBin) })
		cs = resolveClients(ctx, o.clients, root, o.refbin, tmpBin, o.install, o.labKind == "netns")
		for _, c := range cs {
			if c.Skip != "" {
				fmt.Fprintf(stdout, "%s: %s\n", c.Name, c.Skip)
			}
		}
	}

	sw, clientHost, err := startLab(ctx, cl, o, workDir, logger)
	if err != nil {
		return err
	}
	if o.serve {
		return serve(ctx, sw, clientHost, stdout, o.infoFile)
	}

	fmt.Fprintf(stdout, "\nswarm (%s lab): %s payload (%d bytes), %s pieces, %d aria2c seeders %s, tracker %s, clients on %s\n",
		o.labKind, human(o.size), o.size, human(o.piece), o.seeders, strings.Join(sw.SeederAddrs, " "), sw.Tracker.HTTPAnnounce, clientHost.IP())
	// Deleting a finished run's output makes ext4 (mounted with discard
	// here) discard its blocks while the next client writes, which swung
	// run times 2-6x. Outputs are kept until the end when the disk has room
	// for all of them twice over.
	keepRuns := o.keep || enoughSpace(workDir, o.size*int64(o.runs*len(cs))*2)
	load0 := loadAvg()
	results, err := runAll(ctx, o, cs, clientHost, sw, workDir, keepRuns, stdout)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	printMachine(stdout, cs, load0)
	fmt.Fprintf(stdout, "%s lab, payload %s, pieces %s, %d seeders, %d runs per client (interleaved)\n\n",
		o.labKind, human(o.size), human(o.piece), o.seeders, o.runs)
	var ss []summary
	for _, c := range cs {
		ss = append(ss, summarize(c, results))
	}
	printTable(stdout, ss)
	if d, n := handshakeLatency(ctx, clientHost, sw); n > 0 {
		fmt.Fprintf(stdout, "the seeders answer a handshake after %s (median of %d probes): a floor under every client's first request\n",
			d.Round(time.Millisecond), n)
	}
	if o.keep {
		fmt.Fprintf(stdout, "kept: %s\n", workDir)
	}
	return nil
}

// startLab starts the benchmark's swarm in the lab o asks for and returns
// it with the host the clients run on.
func startLab(ctx context.Context, cl *lab.Cleanup, o options, workDir string, logger *slog.Logger) (*lab.Swarm, lab.Host, error) {
	cfg := lab.DefaultSwarmConfig()
	cfg.Dir = filepath.Join(workDir, "lab")
	cfg.Payload = lab.PayloadSpec{Name: "flotilla-bench.bin", Seed: o.seed, Size: o.size}
	cfg.PieceLength = o.piece
	cfg.Seeders = o.seeders
	cfg.SeederUploadLimit = o.seedLimit
	cfg.Logger = logger
	var sw *lab.Swarm
	var err error
	var clientHost lab.Host = lab.Loopback("127.0.0.1")
	switch o.labKind {
	case "loopback":
		sw, err = lab.StartLoopbackSwarm(ctx, cl, cfg)
	case "netns":
		names := []string{"tracker", "client"}
		for i := range o.seeders {
			names = append(names, fmt.Sprintf("seed%d", i+1))
		}
		var hosts map[string]*lab.Netns
		hosts, err = lab.NewStar(ctx, cl, lab.StarConfig{Hosts: names, Subnet: "10.231.0"})
		if err != nil {
			return nil, nil, err
		}
		var seeders []lab.Host
		for _, n := range names[2:] {
			seeders = append(seeders, hosts[n])
		}
		clientHost = hosts["client"]
		sw, err = lab.StartSwarm(ctx, cl, cfg, hosts["tracker"], seeders)
	}
	return sw, clientHost, err
}

// runAll runs every client that is not skipped o.runs times, interleaved,
// printing a line per run, and returns the results.
func runAll(ctx context.Context, o options, cs []*client, clientHost lab.Host, sw *lab.Swarm, workDir string, keepRuns bool, stdout io.Writer) ([]result, error) {
	var results []result
	src := sw.Torrent.Path
	if o.magnet {
		t, err := metainfo.Load(src)
		if err != nil {
			return nil, err
		}
		src = t.Magnet().String()
	}
	for run := 1; run <= o.runs; run++ {
		for _, c := range cs {
			if c.Skip != "" {
				continue
			}
			r := runOnce(ctx, c, clientHost, sw, src, workDir, run, o.timeout, keepRuns)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			for _, p := range sw.Seeders {
				if p.Exited() {
					return nil, fmt.Errorf("seeder %s died during the benchmark; see %s", p.Name, p.LogPath)
				}
			}
			results = append(results, r)
			if r.OK {
				fmt.Fprintf(stdout, "run %d/%d %-16s %7.2f s %8.1f MB/s  CPU %6.2f s  RSS %7.1f MiB  ok\n",
					run, o.runs, c.Name, r.Wall.Seconds(), r.MBps, r.CPU.Seconds(), r.RSSMiB)
			} else {
				fmt.Fprintf(stdout, "run %d/%d %-16s FAIL: %s\n", run, o.runs, c.Name, oneLine(r.Fail))
			}
		}
	}
	return results, nil
}

// serve prints the swarm, writes the info file and waits for a signal.
func serve(ctx context.Context, sw *lab.Swarm, client lab.Host, stdout io.Writer, infoFile string) error {
	sums := filepath.Join(sw.Dir, "SHA256SUMS")
	if err := os.WriteFile(sums, []byte(sw.Payload.Manifest()), 0o644); err != nil {
		return err
	}
	port, err := client.FreePort()
	if err != nil {
		return err
	}
	// LISTEN is a free address for the downloader; with the netns lab it
	// must run in namespace NETNS (ip netns exec "$NETNS" ...).
	info := fmt.Sprintf("TORRENT=%s\nNAME=%s\nTRACKER=%s\nSEEDERS=%s\nSHA256SUMS=%s\nLISTEN=%s\n",
		shq(sw.Torrent.Path), shq(sw.Torrent.Name), shq(sw.Tracker.HTTPAnnounce),
		shq(strings.Join(sw.SeederAddrs, " ")), shq(sums), shq(fmt.Sprintf("%s:%d", client.IP(), port)))
	if ns, ok := client.(*lab.Netns); ok {
		info += "NETNS=" + shq(ns.Name) + "\n"
	}
	if infoFile != "" {
		tmp := infoFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(info), 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, infoFile); err != nil {
			return err
		}
	}
	w := bufio.NewWriter(stdout)
	fmt.Fprintf(w, "swarm up (Ctrl-C to stop it):\n%s", info)
	w.Flush()
	<-ctx.Done()
	return nil
}

// moduleRoot finds the flotilla module's directory from the working dir.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(strings.TrimSpace(string(b)), "module flotilla") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run it inside the flotilla checkout (no go.mod with module flotilla above the working directory)")
		}
		dir = parent
	}
}

func human(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// enoughSpace reports whether the file system holding dir has need bytes
// free.
func enoughSpace(dir string, need int64) bool {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return false
	}
	return int64(st.Bavail)*st.Bsize >= need
}

// handshakeLatency times a bare BEP 3 handshake with every seeder, three
// times each, and returns the median and the number of probes answered.
// aria2c answers new connections on a timer, which bounds how soon any
// client can request its first block.
func handshakeLatency(ctx context.Context, h lab.Host, sw *lab.Swarm) (time.Duration, int) {
	var ds []int64
	var id [20]byte
	copy(id[:], "-FB0001-handshake-p")
	for range 3 {
		for _, a := range sw.SeederAddrs {
			t0 := time.Now()
			if _, err := lab.PeerIDAt(ctx, h, a, sw.Torrent.InfoHash, id); err == nil {
				ds = append(ds, int64(time.Since(t0)))
			}
		}
	}
	return time.Duration(median(ds)), len(ds)
}
