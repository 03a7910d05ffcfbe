package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"flotilla/internal/testenv"
	"flotilla/service"
)

// manyNodes is coord serve in a cluster with swarm nodes on 127.0.1.1,
// 127.0.1.2, … joining it, control plane only: no torrent, no data. In a
// network namespace (the benchmark's, for its packet counters) every
// program runs inside it and every member binds gossipPort; outside, free
// ports.
type manyNodes struct {
	dir, keyFile, tokenFile string
	netns                   string // "" outside a namespace
	gossipPort              int    // in the namespace: every member's gossip port
	gossip                  string // the daemon's gossip address, where nodes join
	serve                   *coordProc
	api                     string // http://HOST:PORT, the daemon's API
	nodes                   []*coordProc
}

// command is prog with args, inside m's namespace if it has one.
func (m *manyNodes) command(prog string, args ...string) *exec.Cmd {
	if m.netns == "" {
		return exec.Command(prog, args...)
	}
	return exec.Command("ip", append([]string{"netns", "exec", m.netns, prog}, args...)...)
}

// startManyNodesServe starts coord serve in a cluster of its own (in the
// namespace netns when not empty; with group ID gid when not 0) and waits
// for its API.
func startManyNodesServe(tb testing.TB, netns string, gossipPort int, gid uint32) *manyNodes {
	tb.Helper()
	dir := tb.TempDir()
	m := &manyNodes{dir: dir, keyFile: filepath.Join(dir, "cluster.key"), tokenFile: filepath.Join(dir, "token"),
		netns: netns, gossipPort: gossipPort}
	key, err := exec.Command(coordBinary(tb), "keygen").Output()
	if err != nil {
		tb.Fatalf("coord keygen: %v", err)
	}
	if err := os.WriteFile(m.keyFile, key, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(m.tokenFile, []byte(serveToken+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	port := gossipPort
	if netns == "" {
		port = testenv.FreePort(tb, "127.0.0.1")
	}
	m.gossip = "127.0.0.1:" + strconv.Itoa(port)
	cmd := m.command(coordBinary(tb), "serve", "--dht=false", "--state", filepath.Join(dir, "state"),
		"--data", filepath.Join(dir, "data"), "--http", "127.0.0.1:0", "--listen", "127.0.0.1:0",
		"--api-token-file", m.tokenFile, "--cluster-listen", m.gossip, "--cluster-key-file", m.keyFile)
	if gid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(os.Geteuid()), Gid: gid, NoSetGroups: true}}
	}
	m.serve = startCoordCmd(tb, cmd)
	testenv.WaitFor(tb, 30*time.Second, "coord serve's API address", func() bool {
		select {
		case <-m.serve.done:
			tb.Fatalf("coord serve exited:\n%s", m.serve.out.String())
		default:
		}
		if a := apiLine.FindStringSubmatch(m.serve.out.String()); a != nil {
			m.api = a[1]
		}
		return m.api != ""
	})
	return m
}

// nodeName is the name of the i-th node (from 0).
func nodeName(i int) string { return fmt.Sprintf("node%02d", i+1) }

// startNodes starts n swarm nodes at once, the i-th on 127.0.1.(i+1),
// each joining the daemon.
func (m *manyNodes) startNodes(tb testing.TB, n int) {
	tb.Helper()
	bin := swarmnodeBinary(tb)
	for i := range n {
		ip := fmt.Sprintf("127.0.1.%d", i+1)
		port := m.gossipPort
		if m.netns == "" {
			port = testenv.FreePort(tb, ip)
		}
		data := filepath.Join(m.dir, nodeName(i))
		m.nodes = append(m.nodes, startCoordCmd(tb, m.command(bin, "--join", m.gossip,
			"--cluster-listen", ip+":"+strconv.Itoa(port), "--listen", ip+":0",
			"--cluster-key-file", m.keyFile, "--name", nodeName(i), "--data", data)))
	}
}

// list is what `coord nodes --server URL --json` says of the cluster.
func (m *manyNodes) list(tb testing.TB) service.Nodes {
	tb.Helper()
	out, err := m.command(coordBinary(tb), "nodes", "--server", m.api, "--token-file", m.tokenFile, "--json").Output()
	if err != nil {
		tb.Fatalf("coord nodes --server %s --json: %v\n%s", m.api, err, out)
	}
	var n service.Nodes
	if err := json.Unmarshal(out, &n); err != nil {
		tb.Fatalf("coord nodes --json printed %q: %v", out, err)
	}
	return n
}

// count is how many of n's members are swarm nodes, and how many of
// those are usable: their delegate session is open.
func countNodes(n service.Nodes) (listed, usable int) {
	for _, mb := range n.Members {
		if mb.Role != "swarmnode" {
			continue
		}
		listed++
		if mb.Session == "open" {
			usable++
		}
	}
	return listed, usable
}

// TestServeManyNodes: twenty swarm nodes started at once join one coord
// serve; `coord nodes --json` lists every one by name, with its delegate
// address, and each becomes usable (the daemon's delegate session to it
// open) without any torrent asking for it. The fifty-node figures (time
// until all are usable, idle CPU, gossip and keep-alive bytes) are
// BenchmarkFiftyNodes'.
func TestServeManyNodes(t *testing.T) {
	const n = 20
	m := startManyNodesServe(t, "", 0, 0)
	m.startNodes(t, n)
	var nodes service.Nodes
	testenv.WaitFor(t, 2*time.Minute, "every swarm node listed and usable", func() bool {
		for i, p := range m.nodes {
			select {
			case <-p.done:
				t.Fatalf("%s exited:\n%s", nodeName(i), p.out.String())
			default:
			}
		}
		nodes = m.list(t)
		_, usable := countNodes(nodes)
		return usable == n
	})
	if !nodes.Enabled || !nodes.Joined {
		t.Errorf("coord nodes: enabled %v, joined %v", nodes.Enabled, nodes.Joined)
	}
	seen := map[string]bool{}
	for _, mb := range nodes.Members {
		switch {
		case mb.Local:
			if mb.Role != "coordinator" || mb.Session != "" {
				t.Errorf("the daemon listed as %+v", mb)
			}
		case mb.Role != "swarmnode" || mb.Delegate == "" || !strings.HasPrefix(mb.Addr, "127.0.1."):
			t.Errorf("member %+v: want a swarm node on 127.0.1.x with a delegate address", mb)
		default:
			seen[mb.Name] = true
		}
	}
	for i := range n {
		if !seen[nodeName(i)] {
			t.Errorf("%s not listed", nodeName(i))
		}
	}
	if len(nodes.Members) != n+1 {
		t.Errorf("%d members listed, want the daemon and %d nodes", len(nodes.Members), n)
	}
}

// BenchmarkFiftyNodes (root: a network namespace of its own, for packet
// counters nobody else's traffic reaches): coord serve and fifty swarm
// nodes on 127.0.1.1…50, control plane only. It times from starting the
// nodes (all at once) until all are usable: the daemon's delegate session
// to each open, as its log says (and `coord nodes --json` shows), and the
// CPU seconds all processes spent until then; then, idle,
// over FLOTILLA_FIFTY_WINDOW (default 30 s), the daemon's CPU and a
// node's, and the bytes every member sends, counted by iptables rules in
// the namespace (IP bytes: headers included): gossip (memberlist's UDP
// probes and gossip, TCP push/pull, on every member's port 7946) and the
// delegate sessions' keep-alives (port 7947).
//
//	go test -run '^$' -bench FiftyNodes -benchtime 1x -count 3 ./cmd/coord
func BenchmarkFiftyNodes(b *testing.B) {
	testenv.RequireRoot(b)
	testenv.Require(b, "ip", "iptables-save", "iptables")
	const n = 50
	window := 30 * time.Second
	if v := os.Getenv("FLOTILLA_FIFTY_WINDOW"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("FLOTILLA_FIFTY_WINDOW=%q: %v", v, err)
		}
		window = d
	}
	coordBinary(b)
	swarmnodeBinary(b)
	for i := range b.N {
		r := runFiftyNodes(b, fmt.Sprintf("fifty-%d-%d", os.Getpid(), i), n, window)
		b.ReportMetric(r.usable.Seconds(), "s-all-usable")
		b.ReportMetric(r.coordJoinCPU, "coord-join-cpu-s")
		b.ReportMetric(r.nodesJoinCPU, "nodes-join-cpu-s")
		b.ReportMetric(100*r.coordCPU, "coord-idle-%core")
		b.ReportMetric(100*r.nodeCPU, "node-idle-%core")
		b.ReportMetric(r.gossipPerNode, "gossip-B/s/node")
		b.ReportMetric(r.delegatePerNode, "keepalive-B/s/node")
		b.ReportMetric(r.coordGossip, "coord-gossip-B/s")
		b.ReportMetric(r.coordDelegate, "coord-keepalive-B/s")
	}
}

// fiftyResult is one BenchmarkFiftyNodes run. Bytes are per second of the
// idle window; a node's are what it sends, the mean of all nodes.
type fiftyResult struct {
	usable, shown                  time.Duration // all usable (the daemon's log), all shown usable by coord nodes --json
	opened                         int           // sessions the daemon logged
	coordJoinCPU, nodesJoinCPU     float64       // CPU seconds from start until all usable: the daemon's, all nodes' together
	coordCPU, nodeCPU              float64       // cores
	gossipPerNode, delegatePerNode float64
	coordGossip, coordDelegate     float64 // sent by the daemon
	udpPerNode                     float64 // of gossipPerNode, UDP (probes, gossip); the rest is TCP push/pull
}

func runFiftyNodes(b *testing.B, netns string, n int, window time.Duration) fiftyResult {
	b.Helper()
	const port = 7946 // gossip; the delegate endpoint is port+1
	run := func(args ...string) {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("ip", "netns", "add", netns)
	b.Cleanup(func() { exec.Command("ip", "netns", "del", netns).Run() })
	run("ip", "-n", netns, "link", "set", "lo", "up")
	// Every packet on loopback passes OUTPUT once: count each by kind and
	// by sender, told apart by the sending socket's group, the daemon's
	// coordGid (by address they cannot be: a TCP connection dialed on
	// loopback leaves from 127.0.0.1 whoever dials). Rules without a target
	// count and pass the packet on; "all" also counts the few packets
	// sent without a socket (SYN-ACKs).
	const coordGid = 61946
	for _, who := range []struct{ name, match string }{
		{"coord", "-m owner --gid-owner " + strconv.Itoa(coordGid)},
		{"nodes", "-m owner ! --gid-owner " + strconv.Itoa(coordGid)},
		{"all", ""},
	} {
		for _, r := range []struct{ kind, proto, match string }{
			{"gossip", "udp", "--dport " + strconv.Itoa(port)},
			{"gossip", "tcp", "--dport " + strconv.Itoa(port)},
			{"gossip", "tcp", "--sport " + strconv.Itoa(port)},
			{"delegate", "tcp", "--dport " + strconv.Itoa(port+1)},
			{"delegate", "tcp", "--sport " + strconv.Itoa(port+1)},
		} {
			args := []string{"ip", "netns", "exec", netns, "iptables", "-w", "-A", "OUTPUT", "-p", r.proto}
			args = append(append(args, strings.Fields(r.match)...), strings.Fields(who.match)...)
			dir, _, _ := strings.Cut(strings.TrimPrefix(r.match, "--"), " ")
			run(append(args, "-m", "comment", "--comment", "fifty-"+who.name+"-"+r.kind+"-"+r.proto+"-"+dir)...)
		}
	}
	m := startManyNodesServe(b, netns, port, coordGid)
	start := time.Now()
	m.startNodes(b, n)
	var res fiftyResult
	testenv.WaitFor(b, 2*time.Minute, "every node usable in coord nodes --json", func() bool {
		_, usable := countNodes(m.list(b))
		return usable == n
	})
	res.shown = time.Since(start)
	joinCPU := m.cpu(b)
	res.coordJoinCPU = joinCPU[0]
	for _, c := range joinCPU[1:] {
		res.nodesJoinCPU += c
	}
	// When each became usable, from the daemon's log (a `coord nodes`
	// process polling on a loaded machine would add its own start-up).
	for _, line := range strings.Split(m.serve.out.String(), "\n") {
		if !strings.Contains(line, `msg="delegate session open"`) || !strings.HasPrefix(line, "time=") {
			continue
		}
		ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			b.Fatalf("log line %q: %v", line, err)
		}
		res.opened++
		res.usable = max(res.usable, at.Sub(start))
	}
	if res.opened != n {
		b.Fatalf("the daemon logged %d sessions opened, want %d:\n%s", res.opened, n, m.serve.out.String())
	}
	time.Sleep(2 * time.Second) // the joins' own gossip settles
	cpu0, bytes0 := m.cpu(b), countBytes(b, netns)
	t0 := time.Now()
	time.Sleep(window)
	cpu1, bytes1 := m.cpu(b), countBytes(b, netns)
	secs := time.Since(t0).Seconds()
	if _, usable := countNodes(m.list(b)); usable != n {
		b.Fatalf("after the idle window %d of %d nodes usable", usable, n)
	}
	res.coordCPU = (cpu1[0] - cpu0[0]) / secs
	var nodes float64
	for i := 1; i < len(cpu1); i++ {
		nodes += cpu1[i] - cpu0[i]
	}
	res.nodeCPU = nodes / float64(n) / secs
	// rate is the bytes per second of the rules whose comment starts with prefix.
	rate := func(prefix string) float64 {
		var sum int64
		for k, v := range bytes1 {
			if strings.HasPrefix(k, prefix+"-") {
				sum += v - bytes0[k]
			}
		}
		return float64(sum) / secs
	}
	res.coordGossip, res.coordDelegate = rate("coord-gossip"), rate("coord-delegate")
	res.gossipPerNode, res.delegatePerNode = rate("nodes-gossip")/float64(n), rate("nodes-delegate")/float64(n)
	res.udpPerNode = rate("nodes-gossip-udp") / float64(n)
	load, _ := os.ReadFile("/proc/loadavg")
	b.Logf("load average %s", strings.Join(strings.Fields(string(load))[:3], " "))
	b.Logf("%d nodes: all usable %.2f s after start (coord nodes --json showed it at %.2f s), CPU until then: daemon %.2f s, nodes %.2f s; idle %.0f s: daemon %.2f %% of a core, a node %.2f %%; "+
		"a node sends %.0f B/s gossip (%.0f UDP, the rest TCP push/pull), %.0f B/s delegate keep-alive; the daemon sends %.0f B/s gossip, %.0f B/s keep-alive",
		n, res.usable.Seconds(), res.shown.Seconds(), res.coordJoinCPU, res.nodesJoinCPU, secs, 100*res.coordCPU, 100*res.nodeCPU,
		res.gossipPerNode, res.udpPerNode, res.delegatePerNode, res.coordGossip, res.coordDelegate)
	return res
}

// cpu is the CPU seconds (user and system) of the daemon, then of each
// node, from /proc/PID/stat.
func (m *manyNodes) cpu(tb testing.TB) []float64 {
	tb.Helper()
	var out []float64
	for _, p := range append([]*coordProc{m.serve}, m.nodes...) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
		if err != nil {
			tb.Fatal(err)
		}
		// Fields after the command's closing parenthesis: state is the
		// first, utime and stime the 12th and 13th (clock ticks, 100/s).
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		utime, _ := strconv.ParseFloat(f[11], 64)
		stime, _ := strconv.ParseFloat(f[12], 64)
		out = append(out, (utime+stime)/100)
	}
	return out
}

// countBytes sums the namespace's counting rules' bytes by comment.
func countBytes(tb testing.TB, netns string) map[string]int64 {
	tb.Helper()
	out, err := exec.Command("ip", "netns", "exec", netns, "iptables-save", "-c", "-t", "filter").Output()
	if err != nil {
		tb.Fatalf("iptables-save: %v", err)
	}
	sums := map[string]int64{}
	for _, line := range strings.Split(string(out), "\n") {
		// [packets:bytes] -A OUTPUT ... --comment fifty-WHO-KIND
		i := strings.Index(line, "--comment ")
		if !strings.HasPrefix(line, "[") || i < 0 {
			continue
		}
		counts, _, _ := strings.Cut(line[1:], "]")
		_, bs, _ := strings.Cut(counts, ":")
		v, err := strconv.ParseInt(bs, 10, 64)
		if err != nil {
			tb.Fatalf("iptables-save line %q: %v", line, err)
		}
		sums[strings.TrimPrefix(strings.Trim(line[i+len("--comment "):], `"`), "fifty-")] += v
	}
	return sums
}
