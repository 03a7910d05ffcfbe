// Command coord is Flotilla's coordinator: it reads a torrent, runs the
// tracker pipelines, the watchdog and the peer-swarm sub-chief, and
// downloads or seeds the torrent. The work is package coordinator's; this
// command parses flags, checks them, wires the coordinator up and turns
// its events and errors into lines for the user (transfer.go).
//
// All logic lives in functions reachable from tests (run and the command
// functions); main only supplies the process's arguments, streams and exit.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"flotilla/internal/cli"
	"flotilla/internal/memlimit"
)

// version is the build's version (cli.Version: module version or VCS
// revision); -ldflags "-X main.version=..." can still set it.
var version = ""

func init() {
	if version == "" {
		version = cli.Version()
	}
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *cmdEnv, args []string) int
}

// cmdEnv carries the process's streams so tests can capture them.
type cmdEnv struct {
	stdout, stderr io.Writer
	stderrIsTTY    bool // the progress display goes to stderr
	getenv         func(string) string
	// started is when the process started (zero in tests, which then
	// count from the command's own start).
	started time.Time
}

func commands() []command {
	return []command{
		{"download", "download a torrent (and optionally keep seeding it)", runDownload},
		{"seed", "verify a torrent's data and seed it", runSeed},
		{"serve", "run as a daemon that downloads and seeds many torrents, driven by an HTTP API", runServe},
		{"add", "add torrents to coord serve", runAdd},
		{"ls", "list coord serve's jobs", runLs},
		{"show", "show one of coord serve's jobs", runShow},
		{"pause", "pause jobs of coord serve", runPause},
		{"resume", "resume jobs of coord serve", runResume},
		{"rm", "remove jobs from coord serve", runRm},
		{"trackers", "show the trackers of one of coord serve's jobs", runTrackers},
		{"announce", "announce to every tracker of a torrent and report what each answered", runAnnounce},
		{"keygen", "write a new random cluster key to standard output", runKeygen},
		{"nodes", "list the members of a cluster", runNodes},
		{"version", "print the version", runVersion},
	}
}

// softMemoryLimit is the Go runtime's soft memory limit unless GOMEMLIMIT
// is set; it is raised (internal/memlimit) for torrents whose pieces are
// too large for pieceBufferMemory and, while they run, by each swarm
// node's job (its pieces in flight and stream windows).
const softMemoryLimit = 48 << 20

func main() {
	started := time.Now()
	// Piece buffers are pooled and bounded; a soft limit keeps the garbage
	// collector from letting the heap drift far above what is live. An
	// explicit GOMEMLIMIT wins.
	if os.Getenv("GOMEMLIMIT") == "" {
		memlimit.Set(softMemoryLimit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	env := &cmdEnv{stdout: os.Stdout, stderr: os.Stderr, stderrIsTTY: isTerminal(os.Stderr), getenv: os.Getenv, started: started}
	code := run(ctx, env, os.Args[1:])
	stop()
	os.Exit(code)
}

// run dispatches a command line (without the program name) and returns the
// exit status: 0 success, 1 failure, 2 usage error.
func run(ctx context.Context, env *cmdEnv, args []string) int {
	if len(args) == 0 {
		usage(env.stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(env.stdout)
		return 0
	case "-version", "--version":
		return runVersion(ctx, env, nil)
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, env, args[1:])
		}
	}
	fmt.Fprintf(env.stderr, "coord: unknown command %q; run 'coord --help' for the commands\n", args[0])
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "coord — Flotilla's coordinator: a BitTorrent downloader that can spread one download over many hosts.\n\n")
	fmt.Fprintf(w, "Usage:\n  coord COMMAND [ARGS] [FLAGS]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'coord COMMAND --help' for the flags of a command; 'coord --version' prints the version.\n")
}

func runVersion(_ context.Context, env *cmdEnv, _ []string) int {
	fmt.Fprintf(env.stdout, "coord %s\n", version)
	return 0
}

// isTerminal reports whether f is a terminal the live display can draw
// on. A terminal that reports a zero size (docker exec -t run from a
// script, some CI consoles) is treated as none: the display would draw
// nothing there, log lines show.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	return err == nil && usableSize(int(ws.Col), int(ws.Row))
}

// usableSize reports whether a terminal of cols×rows can show the live
// display.
func usableSize(cols, rows int) bool { return cols > 0 && rows > 0 }
