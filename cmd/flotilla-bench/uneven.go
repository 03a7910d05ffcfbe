package main

import "fmt"

// The uneven scenario (issue 15): the coordinator and two nodes on WAN
// links of different caps. The aggregate must reach 0.9 of the sum of the
// caps, which needs the slow node's share sized to its rate and no slow
// node holding the last pieces hostage (end game across swarms: its
// unstarted pieces move to an idle swarm, its started ones are duplicated
// and the slower copy is cancelled). Each run is measured against the
// sum; the end game's duplicated bytes are in the dup column and in a line
// per run. A last run with the breakdown (-v logs, CPU profile, WAN
// samples, which cost the coordinator some CPU) shows where the time went;
// it is not one of the measured runs.

// uneven makes n measured runs with every node of the lab, then one with
// the breakdown.
func (b *scalingBench) uneven(n int) ([]scalingRun, error) {
	var capMbit int
	for _, h := range b.lab.Order {
		capMbit += b.lab.Hosts[h].RateMbit
	}
	capMBps := float64(capMbit) / 8
	var runs []scalingRun
	for i := range n + 1 {
		diag := i == n
		name := fmt.Sprintf("run%d", i+1)
		if diag {
			name = "breakdown"
		}
		r, err := b.runSpec(runSpec{name: name, nodes: b.nodes, breakdown: diag})
		if err != nil {
			return runs, err
		}
		r.Ratio, r.Target = r.MBps/capMBps, 0.9
		runs = append(runs, r)
		line := "no end game line in the coordinator's log"
		if eg := r.EndGame; eg != nil {
			line = fmt.Sprintf("end game: %d pieces duplicated (%.1f MiB, %.2f %% of the size), %d copies cancelled, %d delivered twice",
				eg.Duplicated, float64(eg.DuplicatedBytes)/(1<<20), 100*float64(eg.DuplicatedBytes)/float64(r.Bytes), eg.Cancelled, eg.Twice)
		}
		fmt.Fprintf(b.stdout, "%s: %.2f s, %.1f MB/s = %.3f of the caps' sum (%d Mbit/s = %.2f MB/s); %s\n",
			name, r.Wall.Seconds(), r.MBps, r.Ratio, capMbit, capMBps, line)
	}
	return runs, nil
}
