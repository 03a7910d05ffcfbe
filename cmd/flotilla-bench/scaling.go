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

// scalingRun is one measured cluster download.
type scalingRun struct {
	Hosts    int // coordinator + nodes
	Wall     time.Duration
	MBps     float64
	CPU      time.Duration // the coordinator's user+sys
	RSSMiB   float64
	Verified string // "ok" or what is wrong
	Split    string // pieces per swarm, from the completion summary
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

	hosts := []string{"coord"}
	for i := range o.nodes {
		hosts = append(hosts, fmt.Sprintf("node%d", i+1))
	}
	start := time.Now()
	cluster, err := lab.NewCluster(ctx, cl, lab.ClusterConfig{
		Hosts: hosts, Seeders: o.seeders, WANSubnet: "10.232.1", ClusterSubnet: "10.232.2", RateMbit: o.rateMbit,
	})
	if err != nil {
		return err
	}
	cfg := lab.DefaultSwarmConfig()
	cfg.Dir = filepath.Join(workDir, "lab")
	cfg.Payload = lab.PayloadSpec{Name: "flotilla-scaling.bin", Seed: o.seed, Size: o.size}
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
	logger.Info("cluster lab up", "hosts", hosts, "seeders", o.seeders, "wan_cap_mbit", o.rateMbit, "took", time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(stdout, "\nscaling: %s payload, %s pieces, %d uncapped aria2c seeders on the WAN; every host's WAN capped at %d Mbit/s (%.1f MB/s) each way; cluster link uncapped\n",
		human(o.size), human(o.piece), o.seeders, o.rateMbit, float64(o.rateMbit)/8)

	b := &scalingBench{ctx: ctx, o: o, lab: cluster, sw: sw, coordBin: coordBin, nodeBin: nodeBin, keyFile: keyFile, workDir: workDir, stdout: stdout}
	var runs []scalingRun
	for n := 0; n <= o.nodes && !o.failoverOnly; n++ {
		r, err := b.run(n, fmt.Sprintf("hosts%d", n+1))
		if err != nil {
			return err
		}
		runs = append(runs, r)
		fmt.Fprintf(stdout, "%d host(s): %7.2f s %8.1f MB/s  coord CPU %5.1f%%  %s  [%s]\n",
			r.Hosts, r.Wall.Seconds(), r.MBps, 100*r.CPU.Seconds()/r.Wall.Seconds(), r.Verified, r.Split)
	}
	if len(runs) > 0 {
		fmt.Fprintln(stdout)
		printScaling(stdout, runs, o)
	}

	if o.nodes >= 2 {
		if err := b.failover(); err != nil {
			fmt.Fprintf(stdout, "failover run: %v\n", err)
		}
	}
	return nil
}

type scalingBench struct {
	ctx                        context.Context
	o                          options
	lab                        *lab.ClusterLab
	sw                         *lab.Swarm
	coordBin, nodeBin, keyFile string
	workDir                    string
	stdout                     io.Writer
}

// start starts the coordinator and n nodes for one run.
func (b *scalingBench) start(cl *lab.Cleanup, n int, dir string, verbose bool) (*lab.Proc, []*lab.Proc, error) {
	coordHost := b.lab.Hosts["coord"]
	coord, err := lab.StartCoord(b.ctx, cl, coordHost, lab.CoordSpec{
		Bin: b.coordBin, Torrent: b.sw.Torrent.Path, Out: filepath.Join(dir, "out"), KeyFile: b.keyFile,
		LogPath: filepath.Join(dir, "coord.log"), Verbose: verbose, LogInterval: 2 * time.Second,
	})
	if err != nil {
		return nil, nil, err
	}
	if _, err := lab.WaitLine(b.ctx, coord, 30*time.Second, func(l string) bool { return strings.HasPrefix(l, "cluster: gossip on") }); err != nil {
		return nil, nil, fmt.Errorf("coordinator's cluster did not start: %w", err)
	}
	var nodes []*lab.Proc
	for i := range n {
		name := fmt.Sprintf("node%d", i+1)
		p, err := lab.StartNode(b.ctx, cl, b.lab.Hosts[name], lab.NodeSpec{
			Bin: b.nodeBin, Name: name, Join: fmt.Sprintf("%s:%d", coordHost.ClusterAddr, lab.DefaultGossipPort),
			KeyFile: b.keyFile, DataDir: filepath.Join(dir, "data-"+name), LogPath: filepath.Join(dir, name+".log"), Verbose: verbose,
		})
		if err != nil {
			return nil, nil, err
		}
		nodes = append(nodes, p)
	}
	return coord, nodes, nil
}

// run downloads the torrent with the coordinator and n nodes.
func (b *scalingBench) run(n int, name string) (scalingRun, error) {
	r := scalingRun{Hosts: n + 1}
	dir := filepath.Join(b.workDir, name)
	if !b.o.keep {
		defer os.RemoveAll(dir)
	}
	cl := &lab.Cleanup{}
	defer cl.Run()
	coord, nodes, err := b.start(cl, n, dir, false)
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
	r.Wall = coord.Ended().Sub(coord.Started)
	r.MBps = float64(b.sw.Payload.Total) / 1e6 / r.Wall.Seconds()
	if ru, ok := coord.Cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		r.RSSMiB = float64(ru.Maxrss) / 1024
	}
	r.Verified = verifyOutput(b.sw.Payload, filepath.Join(dir, "out"))
	r.Split = split(coord.ReadLog())
	return r, nil
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

func printScaling(w io.Writer, runs []scalingRun, o options) {
	fmt.Fprintf(w, "%-6s %9s %10s %9s %8s %11s %9s  %s\n", "hosts", "wall s", "MB/s", "speed-up", "target", "coord CPU", "coord RSS", "output")
	var base float64
	for _, r := range runs {
		if r.Hosts == 1 {
			base = r.Wall.Seconds()
		}
		speed := "-"
		if base > 0 {
			speed = fmt.Sprintf("%.2fx", base/r.Wall.Seconds())
		}
		fmt.Fprintf(w, "%-6d %9.2f %10.1f %9s %7.1fx %10.1f%% %7.0f MiB  %s\n", r.Hosts, r.Wall.Seconds(), r.MBps, speed,
			0.9*float64(r.Hosts), 100*r.CPU.Seconds()/r.Wall.Seconds(), r.RSSMiB, r.Verified)
	}
	fmt.Fprintf(w, "\nwall: coordinator start to exit (includes the nodes' join and session setup); MB/s = payload/wall (1 MB = 1e6 B);\n"+
		"the WAN cap bounds one host at %.1f MB/s; coord CPU = user+sys of the coordinator process / wall, %% of one core;\n"+
		"target speed-up = 0.9 x hosts; output = every file's size and SHA-256, and no other file in --out.\n",
		float64(o.rateMbit)/8)
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
	coord, nodes, err := b.start(cl, b.o.nodes, dir, true)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.stdout, "\nfailover (%d hosts, -v logs): node1's host crashed (links down + kill -9) at 25%%, node2 killed (kill -9) at 60%%\n", b.o.nodes+1)
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
