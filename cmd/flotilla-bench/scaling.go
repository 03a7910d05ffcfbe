package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"flotilla/internal/lab"
)

// The scaling benchmark (--scaling, issue 4): the cluster lab of package
// lab (NewCluster: every host's WAN capped at --rate, an uncapped cluster
// link), one torrent downloaded by the coordinator alone and with 1..N swarm
// nodes added, then a failover run that measures how long a dead node's
// lease takes to return to the pool.

// scalingRun is one measured cluster download: a row of a scenario's table.
type scalingRun struct {
	Label    string // the row's name; "" prints the host count
	Hosts    int    // coordinator + nodes
	Wall     time.Duration
	MBps     float64
	Bytes    int64         // the payload
	CPU      time.Duration // the coordinator's user+sys
	RSSMiB   float64
	Verified string // "ok" or what is wrong
	Split    string // pieces per swarm, from the completion summary
	// Ratio and Target fill the ratio column (the scenario's ratio
	// header); when Ratio is 0 the table computes the speed-up over the
	// run with Hosts == 1, against a target of 0.9 x Hosts.
	Ratio, Target float64
	// DupBytes is what the cluster fetched twice (end game across nodes),
	// -1 when the log does not say.
	DupBytes int64
	// EndGame is the completion summary's end game line, nil when the
	// log has none.
	EndGame *lab.EndGame
	// Breakdown is where the time went, for a run made with it.
	Breakdown *breakdown
}

// CPUPerGiB is the coordinator's CPU seconds per GiB of payload.
func (r scalingRun) CPUPerGiB() float64 {
	if r.Bytes == 0 {
		return 0
	}
	return r.CPU.Seconds() / (float64(r.Bytes) / (1 << 30))
}

func scaling(ctx context.Context, cl *lab.Cleanup, o options, root, workDir string, stdout, stderr io.Writer) error {
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := lab.NetnsAvailable(); err != nil {
		return fmt.Errorf("--scaling needs network namespaces: %w", err)
	}
	tmpBin, err := os.MkdirTemp("", "flotilla-bench-bin-")
	if err != nil {
		return err
	}
	cl.Add(func() { os.RemoveAll(tmpBin) })
	coordBin, nodeBin := filepath.Join(tmpBin, "coord"), filepath.Join(tmpBin, "swarmnode")
	for bin, pkg := range map[string]string{coordBin: "./cmd/coord", nodeBin: "./cmd/swarmnode"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v: %s", pkg, err, strings.TrimSpace(string(out)))
		}
	}
	var failed []string
	for _, name := range o.scenarios {
		sc := scenarioByName(name)
		if err := runScenario(ctx, sc, o, coordBin, nodeBin, filepath.Join(workDir, sc.name), logger, stdout); err != nil {
			if ctx.Err() != nil {
				return err
			}
			fmt.Fprintf(stdout, "scenario %s: %v\n", sc.name, err)
			failed = append(failed, sc.name)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("scenario(s) %s failed", strings.Join(failed, ", "))
	}
	return nil
}

// runScenario builds sc's lab (its own namespaces, payload and seeders),
// makes its runs and prints its table.
func runScenario(ctx context.Context, sc scenario, o options, coordBin, nodeBin, workDir string, logger *slog.Logger, stdout io.Writer) error {
	cl := &lab.Cleanup{}
	defer cl.Run()
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return err
	}
	nodes, size := o.nodes, o.size
	if sc.nodes > 0 && !o.set["nodes"] {
		nodes = sc.nodes
	}
	if sc.size > 0 && !o.set["size"] {
		size = sc.size
	}
	hosts := []string{"coord"}
	for i := range nodes {
		hosts = append(hosts, fmt.Sprintf("node%d", i+1))
	}
	var rates map[string]int
	if sc.rates != nil {
		rates = sc.rates(o, hosts)
	}
	start := time.Now()
	cluster, err := lab.NewCluster(ctx, cl, lab.ClusterConfig{
		Hosts: hosts, Seeders: o.seeders, WANSubnet: "10.232.1", ClusterSubnet: "10.232.2", RateMbit: o.rateMbit, HostRateMbit: rates,
	})
	if err != nil {
		return err
	}
	cfg := lab.DefaultSwarmConfig()
	cfg.Dir = filepath.Join(workDir, "lab")
	cfg.Payload = lab.PayloadSpec{Name: "flotilla-scaling.bin", Seed: o.seed, Size: size}
	cfg.PieceLength = o.piece
	cfg.Seeders = o.seeders
	cfg.Logger = logger
	sw, err := lab.StartSwarm(ctx, cl, cfg, cluster.Tracker, cluster.SeederHosts())
	if err != nil {
		return err
	}
	keyFile, err := lab.WriteKeyFile(ctx, coordBin, workDir, "cluster.key")
	if err != nil {
		return err
	}
	logger.Info("cluster lab up", "scenario", sc.name, "hosts", hosts, "seeders", o.seeders, "wan_cap_mbit", o.rateMbit, "took", time.Since(start).Round(time.Millisecond))
	caps := fmt.Sprintf("every host's WAN capped at %d Mbit/s (%.1f MB/s) each way", o.rateMbit, float64(o.rateMbit)/8)
	if len(rates) > 0 {
		var parts []string
		for _, h := range hosts {
			parts = append(parts, fmt.Sprintf("%s %d", h, cluster.Hosts[h].RateMbit))
		}
		caps = "WAN caps (Mbit/s, each way): " + strings.Join(parts, ", ")
	}
	fmt.Fprintf(stdout, "\nscenario %s: %s\n  %s payload, %s pieces, %d uncapped aria2c seeders on the WAN; %s; cluster link uncapped\n",
		sc.name, sc.doc, human(size), human(o.piece), o.seeders, caps)

	b := &scalingBench{ctx: ctx, o: o, nodes: nodes, lab: cluster, sw: sw, coordBin: coordBin, nodeBin: nodeBin, keyFile: keyFile, workDir: workDir, stdout: stdout}
	if err := b.warmUp(); err != nil {
		return err
	}
	runs, err := sc.run(b)
	if len(runs) > 0 {
		fmt.Fprintln(stdout)
		printScaling(stdout, sc, runs, o)
	}
	for _, r := range runs {
		if r.Breakdown != nil {
			fmt.Fprintln(stdout)
			r.Breakdown.print(stdout, r)
		}
	}
	return err
}

type scalingBench struct {
	ctx                        context.Context
	o                          options
	nodes                      int // the lab's swarm nodes
	lab                        *lab.ClusterLab
	sw                         *lab.Swarm
	coordBin, nodeBin, keyFile string
	workDir                    string
	stdout                     io.Writer
}

// runSpec says how to make one run.
type runSpec struct {
	name  string // the run's directory and the table row's label
	nodes int    // swarm nodes beside the coordinator
	// nodesFirst starts the nodes before the coordinator, which is
	// given their addresses (--join): a download started on a cluster
	// whose nodes are up, so that they are members as soon as it is (the
	// wall still starts at the coordinator's start). Nodes left to find a
	// coordinator that starts later retry every 0.25-0.5 s
	// (TestNodeFindsLateCoordinator).
	nodesFirst bool
	// breakdown runs with -v logs, a CPU profile of the coordinator and
	// the WAN links sampled, and reports where the time went.
	breakdown bool
}

// start starts the coordinator and n nodes for one run; with nodesFirst the
// nodes first, then the coordinator once they are up.
func (b *scalingBench) start(cl *lab.Cleanup, n int, dir string, verbose, nodesFirst bool, coordExtra ...string) (*lab.Proc, []*lab.Proc, error) {
	coordHost := b.lab.Hosts["coord"]
	var nodes []*lab.Proc
	startNodes := func() error {
		for i := range n {
			name := fmt.Sprintf("node%d", i+1)
			p, err := lab.StartNode(b.ctx, cl, b.lab.Hosts[name], lab.NodeSpec{
				Bin: b.nodeBin, Name: name, Join: fmt.Sprintf("%s:%d", coordHost.ClusterAddr, lab.DefaultGossipPort),
				KeyFile: b.keyFile, DataDir: filepath.Join(dir, "data-"+name), LogPath: filepath.Join(dir, name+".log"), Verbose: verbose,
				Extra: nodeExtra(verbose, dir, name),
			})
			if err != nil {
				return err
			}
			nodes = append(nodes, p)
		}
		return nil
	}
	if nodesFirst {
		if err := startNodes(); err != nil {
			return nil, nil, err
		}
		// Long enough for every node to be up and retrying its join.
		time.Sleep(3 * time.Second)
		var join []string
		for i := range n {
			join = append(join, fmt.Sprintf("%s:%d", b.lab.Hosts[fmt.Sprintf("node%d", i+1)].ClusterAddr, lab.DefaultGossipPort))
		}
		coordExtra = append(coordExtra, "--join", strings.Join(join, ","))
	}
	if _, err := alignToSeederTick(b.sw, b.lab); err != nil {
		fmt.Fprintf(b.stdout, "  (this run starts unaligned with the seeders' tick: %v)\n", err)
	}
	coord, err := lab.StartCoord(b.ctx, cl, coordHost, lab.CoordSpec{
		Bin: b.coordBin, Torrent: b.sw.Torrent.Path, Out: filepath.Join(dir, "out"), KeyFile: b.keyFile,
		LogPath: filepath.Join(dir, "coord.log"), Verbose: verbose, LogInterval: 2 * time.Second, Extra: coordExtra,
	})
	if err != nil {
		return nil, nil, err
	}
	if nodesFirst {
		return coord, nodes, nil
	}
	if _, err := lab.WaitLine(b.ctx, coord, 30*time.Second, func(l string) bool { return strings.HasPrefix(l, "cluster: gossip on") }); err != nil {
		return nil, nil, fmt.Errorf("coordinator's cluster did not start: %w", err)
	}
	if err := startNodes(); err != nil {
		return nil, nil, err
	}
	return coord, nodes, nil
}

// run downloads the torrent with the coordinator and n nodes.
func (b *scalingBench) run(n int, name string) (scalingRun, error) {
	return b.runSpec(runSpec{name: name, nodes: n})
}

// nodeExtra is a node's extra flags: with the breakdown, a CPU profile
// beside its log.
func nodeExtra(breakdown bool, dir, name string) []string {
	if !breakdown {
		return nil
	}
	return []string{"--cpuprofile", filepath.Join(dir, name+".pprof")}
}

// warmUp makes one download with every host of the lab, not measured:
// the first download from freshly started aria2c seeders ran about a
// second longer than the ones after it (uneven: 0.86-0.88 of the caps
// against 0.90-0.91 in three labs; the seeders' state, not the hosts':
// with the namespaces keeping no TCP metrics the first run was as slow),
// and it was always the coordinator alone or a scenario's first run that
// paid.
func (b *scalingBench) warmUp() error {
	r, err := b.runSpec(runSpec{name: "warm-up", nodes: b.nodes})
	if err != nil {
		return fmt.Errorf("warm-up download: %w", err)
	}
	fmt.Fprintf(b.stdout, "  warm-up download (all %d hosts, not counted): %.2f s\n", b.nodes+1, r.Wall.Seconds())
	return nil
}

// runSpec makes the run s.
func (b *scalingBench) runSpec(s runSpec) (scalingRun, error) {
	n := s.nodes
	r := scalingRun{Label: s.name, Hosts: n + 1, Bytes: b.sw.Payload.Total, DupBytes: -1}
	dir := filepath.Join(b.workDir, s.name)
	if !b.o.keep {
		defer os.RemoveAll(dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return r, err
	}
	cl := &lab.Cleanup{}
	defer cl.Run()
	var extra []string
	var sampler *wanSampler
	if s.breakdown {
		extra = append(extra, "--cpuprofile", filepath.Join(dir, "coord.pprof"))
		sampler = startWANSampler(b.lab, 100*time.Millisecond)
		defer sampler.stop()
	}
	coord, nodes, err := b.start(cl, n, dir, s.breakdown, s.nodesFirst, extra...)
	if err != nil {
		return r, err
	}
	select {
	case <-coord.Done():
	case <-time.After(b.o.timeout):
		return r, fmt.Errorf("%d hosts: no completion within %v; coordinator log ends: %s", n+1, b.o.timeout, coord.Tail(600))
	case <-b.ctx.Done():
		return r, b.ctx.Err()
	}
	for _, p := range nodes {
		p.Interrupt(syscall.SIGTERM, 3*time.Second)
	}
	if err := coord.Err(); err != nil {
		return r, fmt.Errorf("%d hosts: coordinator: %v; log ends: %s", n+1, err, coord.Tail(600))
	}
	log := r.measure(coord, b.sw.Payload, filepath.Join(dir, "out"))
	if s.breakdown {
		nodeLogs := map[string]string{}
		for _, p := range nodes {
			nodeLogs[p.Name] = p.ReadLog()
		}
		caps := map[string]int{}
		for h, ch := range b.lab.Hosts {
			caps[h] = ch.RateMbit
		}
		samples := sampler.stop()
		if b.o.keep {
			writeWANSamples(filepath.Join(dir, "wan.tsv"), coord.Started, samples)
		}
		r.Breakdown = analyse(coord.Started, coord.Ended(), log, nodeLogs, samples, caps)
		r.Breakdown.profile, r.Breakdown.profTotal, r.Breakdown.note = profileByConcern(b.coordBin, filepath.Join(dir, "coord.pprof"))
		var profs []string
		for _, p := range nodes {
			if !p.Exited() || p.Cmd.ProcessState == nil {
				continue // not waited for: no rusage, and its profile is incomplete
			}
			if ru, ok := p.Cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
				r.Breakdown.nodeCPU += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			}
			profs = append(profs, filepath.Join(dir, p.Name+".pprof"))
		}
		if len(nodes) > 0 {
			r.Breakdown.nodeProfile, r.Breakdown.nodeProfTotal, r.Breakdown.nodeNote = profileByConcern(b.nodeBin, profs...)
		}
	}
	return r, nil
}

// measure fills r from the coordinator's finished run (wall, MB/s, CPU,
// RSS, the output in out checked against p, the split and the end game
// from its log) and returns the log.
func (r *scalingRun) measure(coord *lab.Proc, p *lab.Payload, out string) string {
	r.Wall = coord.Ended().Sub(coord.Started)
	r.MBps = float64(p.Total) / 1e6 / r.Wall.Seconds()
	if ru, ok := coord.Cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		r.RSSMiB = float64(ru.Maxrss) / 1024
	}
	r.Verified = verifyOutput(p, out)
	log := coord.ReadLog()
	r.Split = split(log)
	r.DupBytes = dupBytes(log)
	if eg, err := lab.EndGameOf(log); err == nil {
		r.EndGame = &eg
	}
	return log
}

// verifyOutput checks every payload file's size and SHA-256 and that the
// output holds no other data file (the resume record aside): no lost and
// no duplicated bytes on disk.
func verifyOutput(p *lab.Payload, out string) string {
	if err := p.Verify(out); err != nil {
		return "FAIL: " + err.Error()
	}
	want := map[string]bool{}
	for _, f := range p.Files {
		want[filepath.Clean(f.Rel)] = true
	}
	var extra []string
	var extraBytes int64
	err := filepath.WalkDir(out, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(out, path)
		if d.IsDir() {
			if d.Name() == ".flotilla" {
				return filepath.SkipDir
			}
			return nil
		}
		if !want[rel] {
			extra = append(extra, rel)
			if fi, err := d.Info(); err == nil {
				extraBytes += fi.Size()
			}
		}
		return nil
	})
	if err != nil {
		return "FAIL: " + err.Error()
	}
	if len(extra) > 0 {
		return fmt.Sprintf("FAIL: %d unexpected files (%d bytes), e.g. %s", len(extra), extraBytes, extra[0])
	}
	return fmt.Sprintf("ok (%d bytes, SHA-256 matches)", p.Total)
}

// split summarises the completion lines: "local 312, node1 290, ...".
func split(log string) string {
	c, err := lab.Contributions(log)
	if err != nil {
		return "no completion summary"
	}
	if len(c) == 0 {
		return "local only"
	}
	names := make([]string, 0, len(c))
	for n := range c {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %d", n, c[n].Pieces)
	}
	return strings.Join(parts, ", ") + " pieces"
}

func printScaling(w io.Writer, sc scenario, runs []scalingRun, o options) {
	ratioHead := sc.ratio
	if ratioHead == "" {
		ratioHead = "speed-up"
	}
	fmt.Fprintf(w, "%-10s %5s %8s %8s %9s %7s %10s %9s %8s  %s\n", "run", "hosts", "wall s", "MB/s", ratioHead, "target", "CPU s/GiB", "coord RSS", "dup MiB", "output")
	var base float64
	for _, r := range runs {
		if r.Hosts == 1 && base == 0 {
			base = r.Wall.Seconds()
		}
	}
	for _, r := range runs {
		ratio, target := "-", "-"
		switch {
		case r.Ratio > 0:
			ratio, target = fmt.Sprintf("%.2f", r.Ratio), fmt.Sprintf("%.2f", r.Target)
		case base > 0:
			ratio, target = fmt.Sprintf("%.2fx", base/r.Wall.Seconds()), fmt.Sprintf("%.1fx", 0.9*float64(r.Hosts))
		}
		dup := "-"
		if r.DupBytes >= 0 {
			dup = fmt.Sprintf("%.1f", float64(r.DupBytes)/(1<<20))
		}
		label := r.Label
		if label == "" {
			label = fmt.Sprintf("hosts%d", r.Hosts)
		}
		fmt.Fprintf(w, "%-10s %5d %8.2f %8.1f %9s %7s %10.2f %5.0f MiB %8s  %s\n", label, r.Hosts, r.Wall.Seconds(), r.MBps, ratio, target,
			r.CPUPerGiB(), r.RSSMiB, dup, r.Verified)
	}
	fmt.Fprintf(w, "\nwall: coordinator start to exit (includes the nodes' join and session setup); MB/s = payload/wall (1 MB = 1e6 B);\n"+
		"the WAN cap bounds one host at %.1f MB/s; CPU s/GiB = user+sys of the coordinator process per GiB of payload;\n"+
		"dup = the pieces the end game leased to a second swarm while another was fetching them, at most what was fetched twice\n"+
		"(- when the log does not say); output = every file's size and SHA-256, and no other file.\n",
		float64(o.rateMbit)/8)
	for _, r := range runs {
		if r.Split != "" {
			fmt.Fprintf(w, "  %s: %s\n", r.Label, r.Split)
		}
	}
}

var logTimeRE = regexp.MustCompile(`^time=(\S+)`)

// logTime returns the slog timestamp of a -v log line.
// death is a swarm node the failover run killed: when and how.
type death struct {
	node string
	at   time.Time
	how  string
}

// failoverLine says, from the coordinator's -v log, how long after d the
// node's lease was back in the pool (and why the coordinator dropped it)
// and when memberlist declared the node failed; or that the log does not
// show it.
func failoverLine(d death, log string) string {
	var lease, fail, why string
	for _, l := range strings.Split(log, "\n") {
		t, ok := logTime(l)
		if !ok || t.Before(d.at) {
			continue
		}
		if lease == "" && strings.Contains(l, "worker gone; its lease returns to the pool") && strings.Contains(l, "worker="+d.node+" ") {
			lease = fmt.Sprintf("%.2f s", t.Sub(d.at).Seconds())
			if i := strings.Index(l, "err="); i >= 0 {
				why = l[i+len("err="):]
			}
		}
		if fail == "" && strings.Contains(l, "swarm node gone") && strings.Contains(l, "node="+d.node+" ") {
			fail = fmt.Sprintf("%.2f s", t.Sub(d.at).Seconds())
		}
	}
	line := d.node + ", " + d.how + ": "
	switch {
	case lease == "":
		line += "its lease was not seen returning to the pool (the download may have ended first)"
	case why == "":
		line += "lease back in the pool after " + lease
	default:
		line += "lease back in the pool after " + lease + " (" + why + ")"
	}
	if fail == "" {
		return line + "; no memberlist failure seen"
	}
	return line + "; memberlist failure seen after " + fail
}

func logTime(line string) (time.Time, bool) {
	m := logTimeRE.FindStringSubmatch(line)
	if m == nil {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, m[1])
	return t, err == nil
}

// failover runs the coordinator with every node (-v logs) and kills two of
// them, one at a time: node1 at 25% as a host crash (its links cut, then
// kill -9: nothing tells the coordinator, which must notice through
// memberlist's failure detection or a lease deadline), and node2 at 60% as
// a process crash (kill -9: the kernel closes its connections, so the
// delegate session drops at once). It reports, for each, the time from the
// death to the sub-chief's "worker gone; its lease returns to the pool"
// (the lease is back in the pool and rebalanced at that moment) and to
// memberlist's verdict as the coordinator logs it ("swarm node gone",
// logged only while a session to the node is still open).
func (b *scalingBench) failover() error {
	dir := filepath.Join(b.workDir, "failover")
	if !b.o.keep {
		defer os.RemoveAll(dir)
	}
	cl := &lab.Cleanup{}
	defer cl.Run()
	coord, nodes, err := b.start(cl, b.nodes, dir, true, false)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.stdout, "\nfailover (%d hosts, -v logs): node1's host crashed (links down + kill -9) at 25%%, node2 killed (kill -9) at 60%%\n", b.nodes+1)
	var deaths []death
	if _, err := lab.WaitLine(b.ctx, coord, b.o.timeout, lab.AtPercent(25)); err != nil {
		return err
	}
	h := b.lab.Hosts["node1"]
	died := time.Now()
	if err := h.Disconnect(b.ctx); err != nil {
		return err
	}
	nodes[0].Kill()
	deaths = append(deaths, death{"node1", died, "host crash (links down, kill -9)"})
	if _, err := lab.WaitLine(b.ctx, coord, b.o.timeout, lab.AtPercent(60)); err != nil {
		return err
	}
	// The time is taken before the kill: Kill returns once the process
	// is reaped, by when the coordinator may have seen its sessions close.
	died = time.Now()
	nodes[1].Kill()
	deaths = append(deaths, death{"node2", died, "process crash (kill -9)"})
	select {
	case <-coord.Done():
	case <-time.After(b.o.timeout):
		return fmt.Errorf("no completion within %v; log ends: %s", b.o.timeout, coord.Tail(600))
	}
	for _, p := range nodes[2:] {
		p.Interrupt(syscall.SIGTERM, 3*time.Second)
	}
	if err := coord.Err(); err != nil {
		return fmt.Errorf("coordinator: %v; log ends: %s", err, coord.Tail(600))
	}
	verified := verifyOutput(b.sw.Payload, filepath.Join(dir, "out"))
	log := coord.ReadLog()
	for _, d := range deaths {
		fmt.Fprintf(b.stdout, "  %s\n", failoverLine(d, log))
	}
	fmt.Fprintf(b.stdout, "  download %s in %.1f s; output %s\n", b.sw.Payload.Name, coord.Ended().Sub(coord.Started).Seconds(), verified)
	if b.o.keep {
		fmt.Fprintf(b.stdout, "  logs: %s\n", dir)
	}
	if strings.HasPrefix(verified, "FAIL") {
		return errors.New("failover run produced wrong output")
	}
	return nil
}
