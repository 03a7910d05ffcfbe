package lab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultGossipPort is the gossip port the cluster lab's programs use; the
// delegate endpoint is the next port.
const DefaultGossipPort = 7946

// CoordSpec says how to run `coord download` on a cluster host.
type CoordSpec struct {
	Bin     string // the coord binary
	Torrent string
	Out     string // --out
	KeyFile string // --cluster-key-file
	LogPath string // combined stdout+stderr
	// PeerPort is the BitTorrent port on the host's WAN address (0: 6881).
	PeerPort int
	// GossipPort on the host's cluster address (0: DefaultGossipPort).
	GossipPort int
	// Verbose adds -v (the coordinator's diagnostics, including lease
	// returns of departed nodes).
	Verbose bool
	// LogInterval between progress lines (0: 1 s).
	LogInterval time.Duration
	Extra       []string
}

// StartCoord starts the coordinator with --progress log on h: the peer
// listener on h's WAN address, gossip and delegate on its cluster address.
func StartCoord(ctx context.Context, cl *Cleanup, h *ClusterHost, s CoordSpec) (*Proc, error) {
	// The lab's swarm is found through its tracker, never the DHT (Extra
	// may turn it on with a --dht-bootstrap inside the lab).
	args := []string{"download", s.Torrent, "--out", s.Out, "--dht=false",
		"--listen", net.JoinHostPort(h.Addr, strconv.Itoa(orDefault(s.PeerPort, 6881))),
		"--cluster-listen", net.JoinHostPort(h.ClusterAddr, strconv.Itoa(orDefault(s.GossipPort, DefaultGossipPort))),
		"--cluster-key-file", s.KeyFile,
		"--progress", "log", "--log-interval", orDefaultDur(s.LogInterval, time.Second).String()}
	if s.Verbose {
		args = append(args, "-v")
	}
	args = append(args, s.Extra...)
	return StartProc(cl, "coord", h.Command(ctx, s.Bin, args...), s.LogPath)
}

// NodeSpec says how to run swarmnode on a cluster host.
type NodeSpec struct {
	Bin     string // the swarmnode binary
	Name    string // --name
	Join    string // --join, e.g. the coordinator's cluster address:port
	KeyFile string
	DataDir string // --data
	LogPath string
	// GossipPort on the host's cluster address (0: DefaultGossipPort).
	GossipPort int
	Verbose    bool
	Extra      []string
}

// StartNode starts a swarm node on h: its swarms listen on h's WAN address
// (a free port per job), gossip and delegate on its cluster address.
func StartNode(ctx context.Context, cl *Cleanup, h *ClusterHost, s NodeSpec) (*Proc, error) {
	args := []string{"--name", s.Name, "--join", s.Join,
		"--cluster-listen", net.JoinHostPort(h.ClusterAddr, strconv.Itoa(orDefault(s.GossipPort, DefaultGossipPort))),
		"--listen", net.JoinHostPort(h.Addr, "0"),
		"--cluster-key-file", s.KeyFile, "--data", s.DataDir}
	if s.Verbose {
		args = append(args, "-v")
	}
	args = append(args, s.Extra...)
	return StartProc(cl, s.Name, h.Command(ctx, s.Bin, args...), s.LogPath)
}

func orDefault(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

func orDefaultDur(v, d time.Duration) time.Duration {
	if v == 0 {
		return d
	}
	return v
}

// Kill sends SIGKILL to the process itself (not its group: that is Stop)
// and waits until it is reaped: a crash, as `kill -9` does it.
func (p *Proc) Kill() {
	if !p.Exited() {
		_ = syscall.Kill(p.Cmd.Process.Pid, syscall.SIGKILL)
	}
	<-p.done
}

// LogWatch reads a growing log file line by line.
type LogWatch struct {
	path    string
	off     int64
	partial []byte
}

// NewLogWatch watches path from its beginning.
func NewLogWatch(path string) *LogWatch { return &LogWatch{path: path} }

// Lines returns the complete lines appended since the last call.
func (w *LogWatch) Lines() ([]string, error) {
	f, err := os.Open(w.path)
	if err != nil {
		return nil, fmt.Errorf("lab: log: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(w.off, io.SeekStart); err != nil {
		return nil, fmt.Errorf("lab: log: %w", err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("lab: log: %w", err)
	}
	w.off += int64(len(b))
	b = append(w.partial, b...)
	var lines []string
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		lines = append(lines, string(b[:i]))
		b = b[i+1:]
	}
	w.partial = append([]byte(nil), b...)
	return lines, nil
}

// WaitLine polls p's log (every 50 ms, from its beginning) until a line
// satisfies match, and returns it. It fails with ErrExited if p ends
// first, ErrTimeout after timeout.
func WaitLine(ctx context.Context, p *Proc, timeout time.Duration, match func(string) bool) (string, error) {
	w := NewLogWatch(p.LogPath)
	var found string
	err := Poll(ctx, timeout, 50*time.Millisecond, func() (bool, error) {
		exited := p.Exited() // before reading: the last lines are then in the file
		lines, err := w.Lines()
		if err != nil {
			return false, err
		}
		for _, l := range lines {
			if match(l) {
				found = l
				return true, nil
			}
		}
		if exited {
			return false, p.exitedErr()
		}
		return false, nil
	})
	return found, err
}

var progressRE = regexp.MustCompile(`^\s*(\d+(?:\.\d+)?)%\s`)

// ProgressPercent parses a `coord --progress log` line ("  42.0%  ...")
// and returns the percentage done.
func ProgressPercent(line string) (float64, bool) {
	m := progressRE.FindStringSubmatch(line)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, err == nil
}

// AtPercent matches a progress line at or past pct.
func AtPercent(pct float64) func(string) bool {
	return func(l string) bool {
		v, ok := ProgressPercent(l)
		return ok && v >= pct
	}
}

// Contribution is one line of the coordinator's completion summary: how
// many pieces a swarm (the local one or a node) delivered.
type Contribution struct {
	Name      string
	Pieces    int
	Received  string // as printed, e.g. "12.0 MiB"
	HashFails int
}

var contribRE = regexp.MustCompile(`^  (\S+)\s+(\d+) pieces  (.+) received  (\d+) hash failures$`)

// Contributions parses the per-swarm lines that `coord download` prints at
// completion when more than one swarm took part. The log must also hold
// the "downloaded ..." line that precedes them.
func Contributions(log string) (map[string]Contribution, error) {
	lines := strings.Split(log, "\n")
	start := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "downloaded ") {
			start = i + 1
		}
	}
	if start < 0 {
		return nil, fmt.Errorf("lab: no \"downloaded ...\" completion line in the coordinator's log")
	}
	out := map[string]Contribution{}
	for _, l := range lines[start:] {
		m := contribRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[2])
		f, _ := strconv.Atoi(m[4])
		out[m[1]] = Contribution{Name: m[1], Pieces: n, Received: m[3], HashFails: f}
	}
	return out, nil
}

// EndGame is the completion summary's end game line: what the end game
// across swarms cost (swarm.EndGame).
type EndGame struct {
	Duplicated      int   // pieces leased to a second swarm
	DuplicatedBytes int64 // their length
	Cancelled       int   // copies dropped because the other arrived first
	Twice           int   // copies delivered after the other was accepted
}

var endGameRE = regexp.MustCompile(`^  end game: (\d+) pieces duplicated \((\d+) bytes, [0-9.]+% of the size\), (\d+) copies cancelled, (\d+) delivered twice$`)

// EndGameOf parses the end game line that `coord download` prints at
// completion when more than one swarm took part.
func EndGameOf(log string) (EndGame, error) {
	for _, l := range strings.Split(log, "\n") {
		if m := endGameRE.FindStringSubmatch(l); m != nil {
			var eg EndGame
			eg.Duplicated, _ = strconv.Atoi(m[1])
			eg.DuplicatedBytes, _ = strconv.ParseInt(m[2], 10, 64)
			eg.Cancelled, _ = strconv.Atoi(m[3])
			eg.Twice, _ = strconv.Atoi(m[4])
			return eg, nil
		}
	}
	return EndGame{}, fmt.Errorf("lab: no \"end game: ...\" line in the coordinator's log")
}

// ReadLog returns p's whole log.
func (p *Proc) ReadLog() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// WriteKeyFile runs `coord keygen` and stores the key in dir/name (0600).
func WriteKeyFile(ctx context.Context, coordBin, dir, name string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, coordBin, "keygen")
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("lab: coord keygen: %w: %s", err, strings.TrimSpace(errb.String()))
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, out.Bytes(), 0o600); err != nil {
		return "", fmt.Errorf("lab: %w", err)
	}
	return path, nil
}
