package lab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// ClusterConfig describes the lab of a Flotilla cluster (issue 4): a WAN
// bridge holding the tracker and the seeders, uncapped, and cluster hosts
// (a coordinator and swarm nodes) each with two links: eth0 on the WAN
// bridge, capped with tc, and eth1 on a separate, uncapped cluster bridge.
//
//	tracker, seed1..seedK ── wan bridge ──(capped eth0)── coord, node1..nodeN
//	                                     cluster bridge ──(uncapped eth1)──┘
//
// Both bridges live in one switch namespace; every host has a namespace of
// its own. Nothing is created in the root namespace.
type ClusterConfig struct {
	// Hosts names the cluster hosts (e.g. "coord", "node1", ...), at most 100.
	Hosts []string
	// Seeders is the number of seeder hosts on the WAN (seed1..seedK), >= 1.
	Seeders int
	// WANSubnet and ClusterSubnet are the first three octets of the two
	// /24s, e.g. "10.240.1" and "10.240.2". On the WAN the tracker is .1,
	// seeder i is .(2+i) and cluster host i is .(101+i); on the cluster
	// link cluster host i is .(1+i).
	WANSubnet, ClusterSubnet string
	// RateMbit caps every cluster host's WAN link in both directions (tc
	// htb on both veth ends); 0 leaves it uncapped. HostRateMbit overrides
	// it per host. The tracker, the seeders and the cluster link are never
	// capped.
	RateMbit     int
	HostRateMbit map[string]int
}

// Validate checks the configuration.
func (c ClusterConfig) Validate() error {
	if len(c.Hosts) == 0 || len(c.Hosts) > 100 {
		return fmt.Errorf("lab: cluster needs 1..100 hosts, got %d", len(c.Hosts))
	}
	if c.Seeders < 1 || c.Seeders > 90 {
		return fmt.Errorf("lab: cluster needs 1..90 seeders, got %d", c.Seeders)
	}
	for _, s := range []string{c.WANSubnet, c.ClusterSubnet} {
		if ip := net.ParseIP(s + ".1").To4(); ip == nil || strings.Count(s, ".") != 2 {
			return fmt.Errorf("lab: subnet %q is not three IPv4 octets", s)
		}
	}
	if c.WANSubnet == c.ClusterSubnet {
		return fmt.Errorf("lab: the WAN and the cluster link need distinct subnets, both are %q", c.WANSubnet)
	}
	seen := map[string]bool{"tracker": true}
	for i := range c.Seeders {
		seen["seed"+strconv.Itoa(i+1)] = true
	}
	mine := map[string]bool{}
	for _, h := range c.Hosts {
		// Namespace names are "<prefix>-<host>" and must stay short.
		if h == "" || len(h) > 16 || strings.ContainsAny(h, "/ \x00") {
			return fmt.Errorf("lab: bad host name %q", h)
		}
		if seen[h] || mine[h] {
			return fmt.Errorf("lab: host %q named twice (tracker and seedN are the WAN's)", h)
		}
		mine[h] = true
	}
	if c.RateMbit < 0 {
		return fmt.Errorf("lab: negative rate %d", c.RateMbit)
	}
	for h, r := range c.HostRateMbit {
		if !mine[h] || r < 0 {
			return fmt.Errorf("lab: rate %d Mbit/s for host %q, which is not in Hosts", r, h)
		}
	}
	return nil
}

// ClusterHost is a cluster host: a Netns whose Addr is its WAN address
// (programs bind their BitTorrent listener there) plus its address on the
// uncapped cluster link.
type ClusterHost struct {
	*Netns
	ClusterAddr string
	RateMbit    int // the WAN cap, 0 if none
}

// ClusterLab is a built cluster lab. Run StartSwarm with Tracker and
// Seeders to put a swarm on its WAN.
type ClusterLab struct {
	Tracker *Netns
	Seeders []*Netns
	Hosts   map[string]*ClusterHost
	Order   []string // cluster host names as configured
}

// SeederHosts returns Seeders as Hosts, for StartSwarm.
func (l *ClusterLab) SeederHosts() []Host {
	hs := make([]Host, len(l.Seeders))
	for i, s := range l.Seeders {
		hs[i] = s
	}
	return hs
}

// netnsBuilder runs ip and tc commands and registers the deletion of every
// namespace it adds.
type netnsBuilder struct {
	ctx context.Context
	cl  *Cleanup
}

func (b netnsBuilder) run(args ...string) error {
	cmd := exec.CommandContext(b.ctx, args[0], args[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("lab: %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

func (b netnsBuilder) addNS(name string) error {
	if err := b.run("ip", "netns", "add", name); err != nil {
		return err
	}
	b.cl.Add(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	return b.run("ip", "-n", name, "link", "set", "lo", "up")
}

// link connects namespace ns (interface dev, address addr/24) to bridge br
// in namespace sw through switch port port, capped at rateMbit if > 0.
func (b netnsBuilder) link(ns, dev, addr, sw, br, port string, rateMbit int) error {
	steps := [][]string{
		{"ip", "link", "add", dev, "netns", ns, "type", "veth", "peer", "name", port, "netns", sw},
		{"ip", "-n", sw, "link", "set", port, "master", br, "up"},
		{"ip", "-n", ns, "addr", "add", addr + "/24", "dev", dev},
		{"ip", "-n", ns, "link", "set", dev, "up"},
	}
	for _, s := range steps {
		if err := b.run(s...); err != nil {
			return err
		}
	}
	if rateMbit <= 0 {
		return nil
	}
	// Egress of the host's end is its upload, egress of the switch's end
	// its download.
	for _, end := range [][2]string{{ns, dev}, {sw, port}} {
		if err := shape(b.run, end[0], end[1], rateMbit); err != nil {
			return err
		}
	}
	return nil
}

// NewCluster creates the namespaces, bridges, veths and caps of cfg. cl
// deletes the namespaces; register it before (so it runs after) the
// processes started inside them, which a single Cleanup does naturally.
func NewCluster(ctx context.Context, cl *Cleanup, cfg ClusterConfig) (*ClusterLab, error) {
	if err := NetnsAvailable(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("tc"); err != nil && (cfg.RateMbit > 0 || len(cfg.HostRateMbit) > 0) {
		return nil, fmt.Errorf("%w: needs tc (iproute2)", ErrNoNetns)
	}
	reapStaleNamespaces()
	prefix := fmt.Sprintf("fl%d-%d", os.Getpid(), starSeq.Add(1))
	b := netnsBuilder{ctx: ctx, cl: cl}
	sw := prefix + "-sw"
	if err := b.addNS(sw); err != nil {
		return nil, err
	}
	for _, br := range []string{"wan", "clu"} {
		if err := b.run("ip", "-n", sw, "link", "add", br, "type", "bridge"); err != nil {
			return nil, err
		}
		if err := b.run("ip", "-n", sw, "link", "set", br, "up"); err != nil {
			return nil, err
		}
	}
	lab := &ClusterLab{Hosts: map[string]*ClusterHost{}, Order: append([]string(nil), cfg.Hosts...)}
	wanHost := func(name, addr, port string) (*Netns, error) {
		n := &Netns{Name: prefix + "-" + name, Addr: addr}
		if err := b.addNS(n.Name); err != nil {
			return nil, err
		}
		return n, b.link(n.Name, "eth0", addr, sw, "wan", port, 0)
	}
	var err error
	if lab.Tracker, err = wanHost("tracker", cfg.WANSubnet+".1", "w1"); err != nil {
		return nil, err
	}
	for i := range cfg.Seeders {
		s, err := wanHost("seed"+strconv.Itoa(i+1), fmt.Sprintf("%s.%d", cfg.WANSubnet, 2+i), "w"+strconv.Itoa(2+i))
		if err != nil {
			return nil, err
		}
		lab.Seeders = append(lab.Seeders, s)
	}
	for i, h := range cfg.Hosts {
		rate := cfg.RateMbit
		if r, ok := cfg.HostRateMbit[h]; ok {
			rate = r
		}
		ch := &ClusterHost{
			Netns:       &Netns{Name: prefix + "-" + h, Addr: fmt.Sprintf("%s.%d", cfg.WANSubnet, 101+i)},
			ClusterAddr: fmt.Sprintf("%s.%d", cfg.ClusterSubnet, 1+i),
			RateMbit:    rate,
		}
		if err := b.addNS(ch.Name); err != nil {
			return nil, err
		}
		if err := b.link(ch.Name, "eth0", ch.Addr, sw, "wan", "w"+strconv.Itoa(101+i), rate); err != nil {
			return nil, err
		}
		if err := b.link(ch.Name, "eth1", ch.ClusterAddr, sw, "clu", "c"+strconv.Itoa(1+i), 0); err != nil {
			return nil, err
		}
		lab.Hosts[h] = ch
	}
	return lab, nil
}

// Do runs f on an OS thread switched into the namespace: sockets that f
// creates (listeners, dials) live in the namespace. Goroutines f starts do
// not inherit it, so f should only create sockets.
func (n *Netns) Do(f func() error) error { return n.do(f) }

// Disconnect takes both of the host's links down, as a crashed or
// unplugged machine: its peers get no FIN or RST, only silence.
func (h *ClusterHost) Disconnect(ctx context.Context) error {
	b := netnsBuilder{ctx: ctx}
	for _, dev := range []string{"eth1", "eth0"} {
		if err := b.run("ip", "-n", h.Name, "link", "set", dev, "down"); err != nil {
			return err
		}
	}
	return nil
}

// LinkBytes returns the bytes received and sent so far on the namespace's
// interface dev (from /proc/thread-self/net/dev read inside it).
func (n *Netns) LinkBytes(dev string) (rx, tx uint64, err error) {
	err = n.do(func() error {
		b, err := os.ReadFile("/proc/thread-self/net/dev")
		if err != nil {
			return fmt.Errorf("lab: %s: %w", n.Name, err)
		}
		rx, tx, err = ParseNetDev(b, dev)
		return err
	})
	return rx, tx, err
}

// ParseNetDev returns dev's received and transmitted bytes from the text
// of /proc/net/dev.
func ParseNetDev(b []byte, dev string) (rx, tx uint64, err error) {
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) != dev {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 9 {
			return 0, 0, fmt.Errorf("lab: /proc/net/dev: short line for %s: %q", dev, line)
		}
		if rx, err = strconv.ParseUint(f[0], 10, 64); err == nil {
			tx, err = strconv.ParseUint(f[8], 10, 64)
		}
		if err != nil {
			return 0, 0, fmt.Errorf("lab: /proc/net/dev: %s: %w", dev, err)
		}
		return rx, tx, nil
	}
	return 0, 0, fmt.Errorf("lab: /proc/net/dev has no interface %s", dev)
}
