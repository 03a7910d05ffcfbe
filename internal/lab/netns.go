package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Netns is a Host inside a network namespace that the lab created (see
// NewStar). Programs run through `ip netns exec`, which execs them in place,
// so their rusage is theirs. Dials and port probes enter the namespace on a
// locked OS thread (setns) for the duration of the socket's creation.
type Netns struct {
	Name string // namespace name (ip netns)
	Addr string // IPv4 address inside it
}

var _ Host = (*Netns)(nil)

// IP implements Host.
func (n *Netns) IP() string { return n.Addr }

// Command implements Host.
func (n *Netns) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// DialContext implements Host.
func (n *Netns) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := n.do(func() error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(n.Addr)}}
		var err error
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// FreePort implements Host.
func (n *Netns) FreePort() (int, error) {
	var port int
	err := n.do(func() error {
		var err error
		port, err = FreePort(n.Addr)
		return err
	})
	return port, err
}

// do runs f on an OS thread switched into the namespace. Sockets created
// by f stay in the namespace. If the thread cannot be switched back it is
// left locked, so the runtime retires it.
func (n *Netns) do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("lab: netns %s: %w", n.Name, err)
			return
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + n.Name)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("lab: netns %s: %w", n.Name, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("lab: enter netns %s: %w", n.Name, err)
			return
		}
		err = f()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// StarConfig describes a star network: one namespace holding a bridge and
// one namespace per host, each linked to the bridge by a veth pair.
type StarConfig struct {
	// Hosts names the hosts (short, e.g. "tracker", "seed1", "client").
	Hosts []string
	// Subnet is the first three octets of the hosts' /24, e.g. "10.201.7";
	// host i gets .(i+1). The addresses exist only inside the namespaces.
	Subnet string
	// RateMbit caps a host's link in both directions (tc htb on both veth
	// ends); hosts not listed are uncapped.
	RateMbit map[string]int
}

// Validate checks the configuration.
func (c StarConfig) Validate() error {
	if len(c.Hosts) == 0 || len(c.Hosts) > 250 {
		return fmt.Errorf("lab: star needs 1..250 hosts, got %d", len(c.Hosts))
	}
	if ip := net.ParseIP(c.Subnet + ".1").To4(); ip == nil || strings.Count(c.Subnet, ".") != 2 {
		return fmt.Errorf("lab: subnet %q is not three IPv4 octets", c.Subnet)
	}
	seen := map[string]bool{}
	for _, h := range c.Hosts {
		if h == "" || len(h) > 32 || strings.ContainsAny(h, "/ \x00") {
			return fmt.Errorf("lab: bad host name %q", h)
		}
		if seen[h] {
			return fmt.Errorf("lab: host %q named twice", h)
		}
		seen[h] = true
	}
	for h, r := range c.RateMbit {
		if !seen[h] || r < 0 {
			return fmt.Errorf("lab: rate %d Mbit/s for host %q, which is not in Hosts", r, h)
		}
	}
	return nil
}

var starSeq atomic.Int64

// ErrNoNetns reports that network namespaces cannot be made here (not root,
// or no `ip`).
var ErrNoNetns = errors.New("lab: network namespaces unavailable")

// NetnsAvailable reports whether NewStar can work: root and `ip` on PATH.
func NetnsAvailable() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: needs root", ErrNoNetns)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("%w: needs ip (iproute2)", ErrNoNetns)
	}
	return nil
}

// NewStar creates the namespaces, veths and bridge of cfg and returns the
// hosts by name. Nothing is created in the root namespace. cl deletes the
// namespaces (run it after the processes inside them are stopped, which a
// single Cleanup does when they were started later).
func NewStar(ctx context.Context, cl *Cleanup, cfg StarConfig) (map[string]*Netns, error) {
	if err := NetnsAvailable(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	reapStaleNamespaces()
	prefix := fmt.Sprintf("fl%d-%d", os.Getpid(), starSeq.Add(1))
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("lab: %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
		}
		return nil
	}
	addNS := func(name string) error {
		if err := run("ip", "netns", "add", name); err != nil {
			return err
		}
		cl.Add(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
		return run("ip", "-n", name, "link", "set", "lo", "up")
	}
	sw := prefix + "-sw"
	if err := addNS(sw); err != nil {
		return nil, err
	}
	if err := run("ip", "-n", sw, "link", "add", "br0", "type", "bridge"); err != nil {
		return nil, err
	}
	if err := run("ip", "-n", sw, "link", "set", "br0", "up"); err != nil {
		return nil, err
	}
	hosts := map[string]*Netns{}
	for i, h := range cfg.Hosts {
		ns := prefix + "-" + h
		port := "p" + strconv.Itoa(i+1) // the switch side of the veth
		host := &Netns{Name: ns, Addr: fmt.Sprintf("%s.%d", cfg.Subnet, i+1)}
		steps := [][]string{
			{"ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port, "netns", sw},
			{"ip", "-n", sw, "link", "set", port, "master", "br0", "up"},
			{"ip", "-n", ns, "addr", "add", host.Addr + "/24", "dev", "eth0"},
			{"ip", "-n", ns, "link", "set", "eth0", "up"},
		}
		if err := addNS(ns); err != nil {
			return nil, err
		}
		for _, s := range steps {
			if err := run(s...); err != nil {
				return nil, err
			}
		}
		if rate := cfg.RateMbit[h]; rate > 0 {
			for _, end := range [][2]string{{ns, "eth0"}, {sw, port}} {
				if err := shape(run, end[0], end[1], rate); err != nil {
					return nil, err
				}
			}
		}
		hosts[h] = host
	}
	return hosts, nil
}

// reapStaleNamespaces deletes namespaces named by NewStar ("fl<pid>-...")
// whose creating process is gone: a lab owner killed with SIGKILL cannot
// run its Cleanup, and namespaces, unlike processes, have no Pdeathsig.
func reapStaleNamespaces() {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		rest, ok := strings.CutPrefix(name, "fl")
		if !ok {
			continue
		}
		pidStr, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
			_ = exec.Command("ip", "netns", "del", name).Run()
		}
	}
}

// shape caps the egress of device dev in namespace ns at rateMbit with one
// htb class whose bucket holds shaperBurst of the rate.
func shape(run func(...string) error, ns, dev string, rateMbit int) error {
	r := strconv.Itoa(rateMbit) + "mbit"
	if err := run("tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "10"); err != nil {
		return err
	}
	burst := strconv.Itoa(shaperBurstBytes(rateMbit)) + "b"
	return run("tc", "-n", ns, "class", "add", "dev", dev, "parent", "1:", "classid", "1:10", "htb", "rate", r, "ceil", r, "burst", burst, "cburst", burst)
}

// shaperBurst is how long a link shaped by shape may have sent nothing
// and still catch up. htb sends while its bucket has tokens and, when it
// is empty, sets a timer for the next packet; tc's default bucket is one
// packet (rate/HZ is zero with the high-resolution scheduler clock), so a
// timer served late loses that time for good, and on a busy machine
// timers are served late. In the 8-host benchmark (both cores busy), links
// that had packets queued all the time delivered 0.93-0.96 of their rate
// with the default bucket, against 0.99-1.00 for the coordinator alone on
// an idle machine; with a 64 KiB bucket (5 ms) 0.98-1.00, with 10 ms
// 0.97-1.02 (5 s windows sampled every 0.1 s, the sampler adding load).
// A real link's clock does not stop while its hosts are busy. Over any
// interval T the link carries at most rate*(T+shaperBurst): in a 13 s
// download 0.08 % more than the cap.
const shaperBurst = 10 * time.Millisecond

// shaperBurstBytes is shaperBurst of rateMbit in bytes, at least two
// full-size frames.
func shaperBurstBytes(rateMbit int) int {
	return max(int(int64(rateMbit)*1e6/8*int64(shaperBurst)/int64(time.Second)), 2*1514)
}
