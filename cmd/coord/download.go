package main

import (
	"context"
	"errors"
	"flag"
	"flotilla/peerwire/mse"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"flotilla/internal/clusteropt"
	"flotilla/metainfo"
	"flotilla/swarm"
)

// exitInterrupted is the status of a download stopped by a signal.
const exitInterrupted = 130

// transferOpts are the flags shared by download and seed.
type transferOpts struct {
	listen     string
	encryption mse.Policy
	maxPeers   int
	peers      string
	verbose    bool
	progress   string
	logEvery   time.Duration
	verify     bool
	sparse     bool
	directIO   bool
	cpuprof    string
	cluster    clusteropt.Options
	dht        dhtOpts
}

func (o *transferOpts) register(fs *flag.FlagSet) {
	fs.StringVar(&o.listen, "listen", "0.0.0.0:6881", "TCP address to accept peer connections on (and whose port is announced); port 0 picks a free one")
	fs.IntVar(&o.maxPeers, "max-peers", 80, "most peer connections at once")
	o.registerEncryption(fs)
	fs.StringVar(&o.peers, "peer", "", "comma-separated HOST:PORT peers to connect to besides those the trackers give")
	fs.BoolVar(&o.verbose, "v", false, "log diagnostics to stderr")
	fs.StringVar(&o.progress, "progress", "auto", "progress display: auto (a bar on a terminal, else a log line every --log-interval), bar, log or none")
	o.cluster.Register(fs, "comma-separated HOST[:PORT] of cluster members to join (optional: swarm nodes usually join the coordinator)")
	o.cluster.RegisterCoordinatorKey(fs)
	fs.BoolVar(&o.directIO, "direct-io", true, "write verified pieces with O_DIRECT where the file system supports it, past the page cache (--direct-io=false: through the page cache)")
	fs.BoolVar(&o.sparse, "sparse", false, "create files sparse instead of reserving their space up front (a full disk then shows up mid-download rather than at start)")
	fs.StringVar(&o.cpuprof, "cpuprofile", "", "write a Go CPU profile of the run to this file (for diagnosing performance)")
	fs.DurationVar(&o.logEvery, "log-interval", 5*time.Second, "time between progress lines when the display is a log")
	o.dht.register(fs, "$XDG_CACHE_HOME/flotilla/dht.json or ~/.cache/flotilla/dht.json")
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
	return runTransfer(ctx, env, "download", pos[0], *out, *seed, o)
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
	return runTransfer(ctx, env, "seed", pos[0], *data, true, o)
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
	printEndGame(w, st)
}

// printEndGame says what the end game across swarms cost: the pieces
// leased to a second swarm while another was fetching them (at most their
// bytes were fetched twice), and what became of the copies.
func printEndGame(w io.Writer, st swarm.Status) {
	eg := st.EndGame
	pct := 0.0
	if st.Length > 0 {
		pct = 100 * float64(eg.DuplicatedBytes) / float64(st.Length)
	}
	fmt.Fprintf(w, "  end game: %d pieces duplicated (%d bytes, %.2f%% of the size), %d copies cancelled, %d delivered twice\n",
		eg.Duplicated, eg.DuplicatedBytes, pct, eg.Cancelled, eg.Twice)
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
// allocations (see the README's Benchmarks section for a measurement).
const pieceBufferMemory = 24 << 20

// pieceMemory splits pieceBufferMemory for a torrent's piece length; with
// pieces too large for it to hold six (four in flight, two queued) it
// grants those six, and over is what they take beyond pieceBufferMemory,
// to be added to the soft memory limit (memlimit.Reserve).
func pieceMemory(pieceLen int64) (inFlight, writeBudget, over int64) {
	inFlight = max(pieceBufferMemory*2/3, 4*pieceLen)
	writeBudget = max(pieceBufferMemory/3, 2*pieceLen)
	return inFlight, writeBudget, max(0, inFlight+writeBudget-pieceBufferMemory)
}
