package main

import (
	"fmt"
	"strings"
)

// The scenarios of the scaling benchmark (--scenario, issue 15). Each builds
// its own cluster lab (its hosts, WAN caps and payload) and prints a table
// of its own runs. To add one, append to scenarios: say how many nodes the
// lab holds, the payload size, the caps if not all --rate, the ratio column
// if not the speed-up over the coordinator alone, and the runs.

// scenario is one --scenario.
type scenario struct {
	name, doc string
	// nodes is the number of swarm nodes in the lab; 0: --nodes. A
	// --nodes given on the command line wins.
	nodes int
	// size is the payload; 0: --size. A --size given wins.
	size int64
	// rates, if set, gives per-host WAN caps in Mbit/s (hosts not in the
	// map get --rate); hosts are "coord", "node1", ...
	rates func(o options, hosts []string) map[string]int
	// ratio heads the ratio column when the runs set scalingRun.Ratio
	// (e.g. "of caps"); "" is the speed-up over the run with one host.
	ratio string
	// run makes the runs, in table order. A run that fails may return
	// the runs made so far with the error.
	run func(b *scalingBench) ([]scalingRun, error)
}

var scenarios = []scenario{
	{
		name: "ladder",
		doc:  "the coordinator alone, then with 1..--nodes swarm nodes added",
		run: func(b *scalingBench) ([]scalingRun, error) {
			var runs []scalingRun
			for n := 0; n <= b.nodes; n++ {
				r, err := b.run(n, fmt.Sprintf("hosts%d", n+1))
				if err != nil {
					return runs, err
				}
				runs = append(runs, r)
			}
			return runs, nil
		},
	},
	{
		name: "failover",
		doc:  "every node (at least 2) downloading; node1's host crashes at 25 %, node2 is killed at 60 %",
		run: func(b *scalingBench) ([]scalingRun, error) {
			if b.nodes < 2 {
				return nil, fmt.Errorf("the failover run needs --nodes >= 2")
			}
			return nil, b.failover()
		},
	},
	{
		name:  "eight",
		doc:   "8 hosts (the coordinator + 7 nodes, up before it) against the coordinator alone, with the breakdown",
		nodes: 7,
		run: func(b *scalingBench) ([]scalingRun, error) {
			return b.aloneAndCluster(true)
		},
	},
	{
		name:  "churn",
		doc:   "8 hosts undisturbed, then again with a node replaced every 4 s (by turns kill -9 and a clean SIGTERM stop; a new node joins on its host)",
		nodes: 7,
		ratio: "wall/base",
		run: func(b *scalingBench) ([]scalingRun, error) {
			return b.churn()
		},
	},
	{
		name:  "uneven",
		doc:   "3 hosts on uneven links (the coordinator 100 Mbit/s, the nodes 20 and 50; any --rate is ignored), run 3 times, each against the sum of the caps",
		nodes: 2,
		size:  384 << 20,
		rates: func(o options, hosts []string) map[string]int {
			m := map[string]int{}
			for i, h := range hosts {
				m[h] = []int{100, 20, 50}[min(i, 2)]
			}
			return m
		},
		ratio: "of caps",
		run: func(b *scalingBench) ([]scalingRun, error) {
			return b.uneven(3)
		},
	},
	{
		name:  "small",
		doc:   "a small download on 3 hosts, the nodes up before the coordinator, with the breakdown",
		nodes: 2,
		size:  192 << 20,
		run: func(b *scalingBench) ([]scalingRun, error) {
			return b.aloneAndCluster(true)
		},
	},
}

// aloneAndCluster runs the coordinator alone, then with every node of the
// lab (started first if nodesFirst), both with the breakdown.
func (b *scalingBench) aloneAndCluster(nodesFirst bool) ([]scalingRun, error) {
	alone, err := b.runSpec(runSpec{name: "alone", breakdown: true})
	if err != nil {
		return nil, err
	}
	cluster, err := b.runSpec(runSpec{name: fmt.Sprintf("hosts%d", b.nodes+1), nodes: b.nodes, nodesFirst: nodesFirst, breakdown: true})
	if err != nil {
		return []scalingRun{alone}, err
	}
	return []scalingRun{alone, cluster}, nil
}

func scenarioByName(name string) scenario {
	for _, s := range scenarios {
		if s.name == name {
			return s
		}
	}
	return scenario{}
}

func scenarioNames() string {
	names := make([]string, len(scenarios))
	for i, s := range scenarios {
		names[i] = s.name
	}
	return strings.Join(names, ", ")
}

// parseScenarios parses --scenario: known names, comma-separated.
func parseScenarios(s string) ([]string, error) {
	var out []string
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if scenarioByName(n).name == "" {
			return nil, fmt.Errorf("unknown scenario %q (known: %s)", n, scenarioNames())
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no scenario given (known: %s)", scenarioNames())
	}
	return out, nil
}
