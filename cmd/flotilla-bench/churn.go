package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"flotilla/internal/lab"
)

// The churn scenario (issue 15): the coordinator and every node of the lab
// download once undisturbed, then again while a node is replaced every
// churnEvery: the node that has run longest stops, by turns killed
// (kill -9) and stopped cleanly (SIGTERM: it finishes and ships its
// pieces, swarmnode --leave-timeout), and a new node with a new name joins
// on its host at once. The table compares the walls (target: the churn
// run within 1.5 x the undisturbed one) and checks both outputs; a line
// counts the replacements and what the clean stops shipped.

// churnEvery is how often a node is replaced.
const churnEvery = 4 * time.Second

// churnNode is a node process of the churn run.
type churnNode struct {
	p    *lab.Proc
	host string
	name string
}

// churnStats is what the churn run did and what its logs say.
type churnStats struct {
	killed, stopped, joined int
	// From the stopped nodes' own lines ("swarmnode: left ..."): jobs
	// that left cleanly, of all, and the pieces they shipped and did not.
	left, leftJobs              int
	onLeave, shipped, unshipped int
	// From the coordinator's -v log: pieces the sub-chief took back from
	// a node that had left cleanly ("gone" after a clean leave: 0 when
	// every lease came back before), and pieces dropped because they were
	// verified already (fetched twice: end-game duplicates included).
	goneAfterLeave int
	dropped        int
}

func (b *scalingBench) churn() ([]scalingRun, error) {
	base, err := b.runSpec(runSpec{name: "undisturbed", nodes: b.nodes})
	if err != nil {
		return nil, err
	}
	base.Label = "undisturbed"
	base.Ratio, base.Target = 1, 1.5
	r, st, err := b.churnRun()
	if err != nil {
		return []scalingRun{base}, err
	}
	r.Label = "churn"
	r.Ratio, r.Target = r.Wall.Seconds()/base.Wall.Seconds(), 1.5
	fmt.Fprintf(b.stdout, "\nchurn: a node replaced every %v: %d killed (kill -9), %d stopped cleanly (SIGTERM), %d joined\n",
		churnEvery, st.killed, st.stopped, st.joined)
	fmt.Fprintf(b.stdout, "  clean stops: %d of %d jobs left cleanly; they shipped %d pieces while leaving (%d in all), %d verified but not shipped;\n"+
		"  %d pieces taken back as gone from nodes that left cleanly; %d pieces dropped as verified already (fetched twice, end game included)\n",
		st.left, st.leftJobs, st.onLeave, st.shipped, st.unshipped, st.goneAfterLeave, st.dropped)
	fmt.Fprintf(b.stdout, "  wall churn / undisturbed = %.2f (target <= 1.5)\n", r.Ratio)
	return []scalingRun{base, r}, nil
}

// churnRun is the run under churn, with -v logs.
func (b *scalingBench) churnRun() (scalingRun, churnStats, error) {
	r := scalingRun{Hosts: b.nodes + 1, Bytes: b.sw.Payload.Total, DupBytes: -1}
	var st churnStats
	dir := filepath.Join(b.workDir, "churn")
	if !b.o.keep {
		defer os.RemoveAll(dir)
	}
	cl := &lab.Cleanup{}
	defer cl.Run()
	coord, procs, err := b.start(cl, b.nodes, dir, true, false)
	if err != nil {
		return r, st, err
	}
	var live []churnNode // oldest first
	for i, p := range procs {
		h := fmt.Sprintf("node%d", i+1)
		live = append(live, churnNode{p: p, host: h, name: h})
	}
	var stopping sync.WaitGroup
	var mu sync.Mutex
	var stoppedLogs []string
	gen := map[string]int{} // replacements per host: the new node's name and ports
	coordHost := b.lab.Hosts["coord"]
	tick := time.NewTicker(churnEvery)
	defer tick.Stop()
	deadline := time.After(b.o.timeout)
loop:
	for i := 0; ; i++ {
		select {
		case <-coord.Done():
			break loop
		case <-deadline:
			return r, st, fmt.Errorf("churn: no completion within %v; coordinator log ends: %s", b.o.timeout, coord.Tail(600))
		case <-b.ctx.Done():
			return r, st, b.ctx.Err()
		case <-tick.C:
		}
		v := live[0]
		live = live[1:]
		if i%2 == 0 {
			v.p.Kill()
			st.killed++
		} else {
			st.stopped++
			stopping.Add(1)
			go func() {
				defer stopping.Done()
				v.p.Interrupt(syscall.SIGTERM, 30*time.Second)
				mu.Lock()
				stoppedLogs = append(stoppedLogs, v.p.ReadLog())
				mu.Unlock()
			}()
		}
		gen[v.host]++
		name := fmt.Sprintf("%s-r%d", v.host, gen[v.host])
		p, err := lab.StartNode(b.ctx, cl, b.lab.Hosts[v.host], lab.NodeSpec{
			Bin: b.nodeBin, Name: name, Join: fmt.Sprintf("%s:%d", coordHost.ClusterAddr, lab.DefaultGossipPort),
			KeyFile: b.keyFile, DataDir: filepath.Join(dir, "data-"+name), LogPath: filepath.Join(dir, name+".log"), Verbose: true,
			GossipPort: lab.DefaultGossipPort + 10*gen[v.host], // beside a node still leaving on that host
		})
		if err != nil {
			return r, st, err
		}
		st.joined++
		live = append(live, churnNode{p: p, host: v.host, name: name})
	}
	for _, n := range live {
		n.p.Interrupt(syscall.SIGTERM, 3*time.Second)
	}
	stopping.Wait()
	if err := coord.Err(); err != nil {
		return r, st, fmt.Errorf("churn: coordinator: %v; log ends: %s", err, coord.Tail(600))
	}
	log := r.measure(coord, b.sw.Payload, filepath.Join(dir, "out"))
	for _, l := range stoppedLogs {
		if m := leftLineRE.FindStringSubmatch(l); m != nil {
			st.left += atoi(m[1])
			st.leftJobs += atoi(m[2])
			st.onLeave += atoi(m[3])
			st.shipped += atoi(m[4])
			st.unshipped += atoi(m[5])
		}
	}
	st.goneAfterLeave, st.dropped = churnLog(log)
	if strings.HasPrefix(r.Verified, "FAIL") {
		return r, st, fmt.Errorf("churn run produced wrong output: %s", r.Verified)
	}
	return r, st, nil
}

// leftLineRE matches swarmnode's summary of a clean leave.
var leftLineRE = regexp.MustCompile(`swarmnode: left (\d+) of (\d+) jobs cleanly in \S+: (\d+) pieces shipped while leaving \((\d+) in all\), (\d+) verified but not shipped`)

var piecesRE = regexp.MustCompile(` pieces=(\d+)`)

// churnLog counts, in the coordinator's -v log, the pieces taken back as
// gone from nodes that had left cleanly and the pieces dropped as
// verified already.
func churnLog(log string) (goneAfterLeave, dropped int) {
	for _, l := range strings.Split(log, "\n") {
		switch {
		case strings.Contains(l, "worker gone; its lease returns to the pool") && strings.Contains(l, "node left (stopped cleanly)"):
			if m := piecesRE.FindStringSubmatch(l); m != nil {
				goneAfterLeave += atoi(m[1])
			}
		case strings.Contains(l, "piece dropped: verified already"):
			dropped++
		}
	}
	return goneAfterLeave, dropped
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
