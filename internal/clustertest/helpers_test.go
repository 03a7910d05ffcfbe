package clustertest

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"flotilla/internal/lab"
	"flotilla/internal/testenv"
)

func TestMain(m *testing.M) {
	if os.Getenv(hostileEnv) != "" {
		os.Exit(hostileNodeMain())
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	if code == 0 {
		goleak.VerifyTestMain(nopM{})
	}
	os.Exit(code)
}

// nopM lets goleak check after the tests ran (and binDir was removed).
type nopM struct{}

func (nopM) Run() int { return 0 }

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds cmd/coord and cmd/swarmnode once per test run.
func binaries(t *testing.T) (coord, node string) {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "clustertest-bin-")
		if buildErr != nil {
			return
		}
		for _, c := range []string{"coord", "swarmnode"} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, c), "flotilla/cmd/"+c).CombinedOutput()
			if err != nil {
				buildErr = fmt.Errorf("go build %s: %v: %s", c, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "coord"), filepath.Join(binDir, "swarmnode")
}

var subnetSeq atomic.Int32

// env is one test's cluster lab with a swarm on its WAN.
type env struct {
	t        *testing.T
	ctx      context.Context
	cl       *lab.Cleanup
	dir      string
	lab      *lab.ClusterLab
	sw       *lab.Swarm
	coordBin string
	nodeBin  string
	keyFile  string
	out      string // the coordinator's --out
}

type envConfig struct {
	hosts    []string // cluster hosts; the first is the coordinator's
	rateMbit int
	payload  lab.PayloadSpec
	piece    int64
	timeout  time.Duration // the whole test
}

// newEnv builds the lab (skipping without root), the swarm and a cluster
// key. Everything is torn down in t.Cleanup, also when the test fails.
func newEnv(t *testing.T, cfg envConfig) *env {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.Require(t, "ip", "tc", "opentracker", "aria2c", "go")
	coordBin, nodeBin := binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	t.Cleanup(cancel)
	cl := &lab.Cleanup{}
	e := &env{t: t, ctx: ctx, cl: cl, dir: t.TempDir(), coordBin: coordBin, nodeBin: nodeBin}
	t.Cleanup(func() {
		e.keepLogs()
		if t.Failed() {
			e.dumpLogs()
		}
		cl.Run()
	})
	n := subnetSeq.Add(1)
	var err error
	e.lab, err = lab.NewCluster(ctx, cl, lab.ClusterConfig{
		Hosts:         cfg.hosts,
		Seeders:       3,
		WANSubnet:     fmt.Sprintf("10.241.%d", 2*n),
		ClusterSubnet: fmt.Sprintf("10.241.%d", 2*n+1),
		RateMbit:      cfg.rateMbit,
	})
	if err != nil {
		t.Fatal(err)
	}
	scfg := lab.DefaultSwarmConfig()
	scfg.Dir = filepath.Join(e.dir, "swarm")
	scfg.Payload = cfg.payload
	scfg.PieceLength = cfg.piece
	scfg.Seeders = len(e.lab.Seeders)
	e.sw, err = lab.StartSwarm(ctx, cl, scfg, e.lab.Tracker, e.lab.SeederHosts())
	if err != nil {
		t.Fatal(err)
	}
	if e.keyFile, err = lab.WriteKeyFile(ctx, coordBin, e.dir, "cluster.key"); err != nil {
		t.Fatal(err)
	}
	e.out = filepath.Join(e.dir, "out")
	return e
}

func (e *env) host(name string) *lab.ClusterHost {
	h := e.lab.Hosts[name]
	if h == nil {
		e.t.Fatalf("no host %q in the lab", name)
	}
	return h
}

func (e *env) coordHost() *lab.ClusterHost { return e.host(e.lab.Order[0]) }

// joinAddr is the coordinator's gossip address on the cluster link.
func (e *env) joinAddr() string {
	return fmt.Sprintf("%s:%d", e.coordHost().ClusterAddr, lab.DefaultGossipPort)
}

// startCoord starts `coord download` (with -v) and waits until its
// cluster listens. logName distinguishes restarts.
func (e *env) startCoord(logName string) *lab.Proc {
	e.t.Helper()
	p, err := lab.StartCoord(e.ctx, e.cl, e.coordHost(), lab.CoordSpec{
		Bin: e.coordBin, Torrent: e.sw.Torrent.Path, Out: e.out, KeyFile: e.keyFile,
		LogPath: filepath.Join(e.dir, "logs", logName+".log"), Verbose: true,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := lab.WaitLine(e.ctx, p, 20*time.Second, func(l string) bool { return strings.HasPrefix(l, "cluster: gossip on") }); err != nil {
		e.t.Fatalf("coordinator's cluster did not start: %v", err)
	}
	return p
}

// startNode starts swarmnode name on the host of the same name.
func (e *env) startNode(name, keyFile string) *lab.Proc {
	e.t.Helper()
	return e.startNodeLog(name, keyFile, name)
}

// startNodeLog is startNode with its log in logName.log: a node restarted
// on the same host, with the same name and data directory, gets a log of
// its own.
func (e *env) startNodeLog(name, keyFile, logName string) *lab.Proc {
	e.t.Helper()
	p, err := lab.StartNode(e.ctx, e.cl, e.host(name), lab.NodeSpec{
		Bin: e.nodeBin, Name: name, Join: e.joinAddr(), KeyFile: keyFile,
		DataDir: e.nodeDataDir(name), LogPath: filepath.Join(e.dir, "logs", logName+".log"), Verbose: true,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// nodeDataDir is the --data directory of the node on host name.
func (e *env) nodeDataDir(name string) string { return filepath.Join(e.dir, "data-"+name) }

// waitJoined waits until the node says it joined the cluster.
func (e *env) waitJoined(p *lab.Proc) {
	e.t.Helper()
	if _, err := lab.WaitLine(e.ctx, p, 20*time.Second, func(l string) bool { return strings.HasPrefix(l, "swarmnode: joined the cluster") }); err != nil {
		e.t.Fatalf("%s did not join: %v", p.Name, err)
	}
}

// waitPercent waits until the coordinator's progress reaches pct and
// returns the line.
func (e *env) waitPercent(p *lab.Proc, pct float64, timeout time.Duration) string {
	e.t.Helper()
	l, err := lab.WaitLine(e.ctx, p, timeout, lab.AtPercent(pct))
	if err != nil {
		e.t.Fatalf("coordinator never reached %.0f%%: %v", pct, err)
	}
	return l
}

// waitDone waits for the coordinator to exit, requires status 0 and a
// byte-identical result, and returns the per-swarm contributions.
func (e *env) waitDone(p *lab.Proc, timeout time.Duration) map[string]lab.Contribution {
	e.t.Helper()
	select {
	case <-p.Done():
	case <-time.After(timeout):
		e.t.Fatalf("coordinator did not finish within %v; log ends: %s", timeout, p.Tail(1500))
	case <-e.ctx.Done():
		e.t.Fatalf("test deadline passed before the coordinator finished; log ends: %s", p.Tail(1500))
	}
	took := p.Ended().Sub(p.Started)
	if err := p.Err(); err != nil {
		e.t.Fatalf("coordinator: %v; log ends: %s", err, p.Tail(1500))
	}
	if err := e.sw.Payload.Verify(e.out); err != nil {
		e.t.Fatalf("output differs from the payload: %v", err)
	}
	c, err := lab.Contributions(p.ReadLog())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Logf("coordinator finished in %v, output verified; contributions: %v", took.Round(time.Millisecond), c)
	return c
}

// linesMatching returns the lines of p's log that contain every part.
func linesMatching(p *lab.Proc, parts ...string) []string {
	var out []string
	for _, l := range strings.Split(p.ReadLog(), "\n") {
		ok := true
		for _, s := range parts {
			if !strings.Contains(l, s) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// keepEnv names a directory where every test's process logs are copied
// (whole, debug lines included) for diagnosis.
const keepEnv = "FLOTILLA_CLUSTERTEST_KEEP"

// keepLogs copies the process logs where keepEnv says, if it is set.
func (e *env) keepLogs() {
	logs, _ := filepath.Glob(filepath.Join(e.dir, "logs", "*.log"))
	if keep := os.Getenv(keepEnv); keep != "" {
		dst := filepath.Join(keep, e.t.Name())
		if err := os.MkdirAll(dst, 0o755); err == nil {
			for _, l := range logs {
				if b, err := os.ReadFile(l); err == nil {
					_ = os.WriteFile(filepath.Join(dst, filepath.Base(l)), b, 0o644)
				}
			}
			e.t.Logf("logs kept in %s", dst)
		}
	}
}

// dumpLogs logs the end of every process log, for a failed test.
func (e *env) dumpLogs() {
	logs, _ := filepath.Glob(filepath.Join(e.dir, "logs", "*.log"))
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		var keep []string
		for _, s := range lines {
			// Debug chatter drowns the story; keep the rest.
			if !strings.Contains(s, "level=DEBUG") {
				keep = append(keep, s)
			}
		}
		if len(keep) > 40 {
			keep = keep[len(keep)-40:]
		}
		e.t.Logf("---- %s (last %d non-debug lines) ----\n%s", filepath.Base(l), len(keep), strings.Join(keep, "\n"))
	}
}

// multiFile is the tests' multi-file payload of about size bytes: uneven
// files in subdirectories, one empty.
func multiFile(name string, size int64) lab.PayloadSpec {
	return lab.PayloadSpec{Name: name, Seed: 7, Files: []lab.FileSpec{
		{Path: "a/one.bin", Size: size * 3 / 8},
		{Path: "a/b/two.bin", Size: size/4 + 12345},
		{Path: "empty", Size: 0},
		{Path: "three.bin", Size: size*3/8 - 12345},
	}}
}

// logTime returns the slog timestamp of a -v log line.
func logTime(line string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(line, "time=")
	if !ok {
		return time.Time{}, false
	}
	ts, _, _ := strings.Cut(rest, " ")
	t, err := time.Parse(time.RFC3339Nano, ts)
	return t, err == nil
}

// jobPeerAddr waits for the node's "job started" line and returns the
// address its job's swarm listens on (peer_addr).
func (e *env) jobPeerAddr(p *lab.Proc) netip.AddrPort {
	e.t.Helper()
	l, err := lab.WaitLine(e.ctx, p, 20*time.Second, func(l string) bool {
		return strings.Contains(l, `msg="job started"`) && strings.Contains(l, " peer_addr=")
	})
	if err != nil {
		e.t.Fatalf("%s never started a job: %v", p.Name, err)
	}
	ap, err := netip.ParseAddrPort(logField(l, "peer_addr"))
	if err != nil {
		e.t.Fatalf("%s: job started without a usable peer_addr: %q", p.Name, l)
	}
	return ap
}

// checkAnnounced checks, while a download runs, that the WAN's tracker
// knows the coordinator and every node as a peer at the host's own WAN
// address (issue 4: "each node also announces itself with its own peer id
// and address"): a fresh client announcing from the tracker's namespace
// must be given the coordinator's --listen address and each node's job
// address (its host's WAN IP and the port from its "job started" line).
// opentracker keeps no peer ids (its peer store is compact addresses
// only), so the ids are checked at the addresses instead: a BEP 3
// handshake to each must answer with a peer id, all distinct. swarmnode
// announces with the id its job's swarm uses (delegate.Job.PeerID, fresh
// per job; cmd/swarmnode announceJob), so these are the announced ids.
func (e *env) checkAnnounced(nodes map[string]*lab.Proc) {
	e.t.Helper()
	ch := e.coordHost()
	want := map[netip.AddrPort]string{
		netip.AddrPortFrom(netip.MustParseAddr(ch.Addr), 6881): "coordinator", // StartCoord's default port
	}
	for name, p := range nodes {
		ap := e.jobPeerAddr(p)
		if ap.Addr().String() != e.host(name).Addr {
			e.t.Errorf("%s's job listens on %v, not on its host's WAN address %s", name, ap, e.host(name).Addr)
		}
		want[ap] = name
	}
	me := [20]byte{}
	copy(me[:], "-LB0001-clustertest-")
	ih := e.sw.Torrent.InfoHash
	var got []netip.AddrPort
	missing := func() []string {
		seen := map[netip.AddrPort]bool{}
		for _, a := range got {
			seen[a] = true
		}
		var out []string
		for a, who := range want {
			if !seen[a] {
				out = append(out, fmt.Sprintf("%s (%v)", who, a))
			}
		}
		return out
	}
	// Each announces when it starts; allow for one round trip each.
	err := lab.Poll(e.ctx, 10*time.Second, 200*time.Millisecond, func() (bool, error) {
		var err error
		got, err = e.sw.Tracker.AnnouncePeers(e.ctx, ih, me, 1)
		return err == nil && len(missing()) == 0, err
	})
	if err != nil {
		e.t.Errorf("the tracker does not list %v: %v; it lists %v", missing(), err, got)
		return
	}
	e.t.Logf("the tracker lists %v", got)
	ids := map[[20]byte]string{}
	for a, who := range want {
		id, err := lab.PeerIDAt(e.ctx, e.lab.Tracker, a.String(), ih, me)
		if err != nil {
			e.t.Errorf("%s at %v: %v", who, a, err)
			continue
		}
		if other, dup := ids[id]; dup {
			e.t.Errorf("%s and %s present the same peer id %q", who, other, id[:])
		}
		ids[id] = who
		e.t.Logf("%s at %v: peer id %q", who, a, id[:])
	}
}

// lastJobShipped waits until the node's last job has ended and returns the
// bytes of verified pieces it shipped to the coordinator in it (its "job
// ended ... shipped=N" line).
func (e *env) lastJobShipped(p *lab.Proc) int64 {
	e.t.Helper()
	started := linesMatching(p, `msg="job started"`)
	if len(started) == 0 {
		e.t.Fatalf("%s never started a job", p.Name)
	}
	job := logField(started[len(started)-1], "job")
	l, err := lab.WaitLine(e.ctx, p, 10*time.Second, func(l string) bool {
		return strings.Contains(l, `msg="job ended"`) && logField(l, "job") == job
	})
	if err != nil {
		e.t.Fatalf("%s: job %s never ended: %v", p.Name, job, err)
	}
	n, err := strconv.ParseInt(logField(l, "shipped"), 10, 64)
	if err != nil {
		e.t.Fatalf("%s: no shipped count in %q", p.Name, l)
	}
	return n
}

// logField returns the value of key=value in a -v (slog text) log line,
// "" if absent. Values with spaces (quoted) are not supported.
func logField(line, key string) string {
	_, v, ok := strings.Cut(line, " "+key+"=")
	if !ok {
		return ""
	}
	v, _, _ = strings.Cut(v, " ")
	return v
}
