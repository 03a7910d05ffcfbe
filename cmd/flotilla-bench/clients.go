package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"flotilla/internal/lab"
)

// runEnv is what a client needs to download once.
type runEnv struct {
	Torrent string // .torrent path, or the magnet link (--magnet)
	OutDir  string // fresh, empty; the data lands in OutDir/<name>
	IP      string // address to listen on
	Port    int    // free port on IP
}

// client is one downloader under test.
type client struct {
	Name    string
	Path    string // resolved executable; empty when unavailable
	Version string
	Skip    string // why it is not measured, if it is not
	// ExitsWhenDone: the program exits 0 once the download is complete.
	// Otherwise the bench polls the output and stops it when complete.
	ExitsWhenDone bool
	// Args prepares the command line (and any config file) for one run.
	Args func(e runEnv) ([]string, error)
}

var knownClients = []string{"coord", "aria2c", "rain", "anacrolix", "transmission"}

// lastLine keeps the last non-empty line written to it: what a script
// said last, usually why it failed.
type lastLine struct{ buf, last []byte }

func (l *lastLine) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		if line := bytes.TrimSpace(l.buf[:i]); len(line) > 0 {
			l.last = append(l.last[:0], line...)
		}
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 4096 { // a line without end: keep its tail
		l.buf = l.buf[len(l.buf)-4096:]
	}
	return len(p), nil
}

func (l *lastLine) String() string {
	if line := bytes.TrimSpace(l.buf); len(line) > 0 {
		return string(line)
	}
	return string(l.last)
}

// resolveClients finds (and for coord, builds) every requested client.
func resolveClients(ctx context.Context, names []string, root, refbin, tmpBin string, install, netns bool) []*client {
	if install && needsInstall(names, refbin) {
		script := filepath.Join(root, "scripts", "install-reference-clients.sh")
		fmt.Fprintf(os.Stderr, "installing reference clients: %s %s\n", script, refbin)
		cmd := exec.CommandContext(ctx, "bash", script, refbin)
		cmd.Dir = root
		var out lastLine
		cmd.Stdout, cmd.Stderr = os.Stderr, io.MultiWriter(os.Stderr, &out)
		if err := cmd.Run(); err != nil {
			why := err.Error()
			if l := out.String(); l != "" {
				why = l
			}
			fmt.Fprintf(os.Stderr, "flotilla-bench: installing the reference clients failed (%s); continuing with those that are there, the others are skipped\n", why)
		}
	}
	var cs []*client
	for _, n := range names {
		var c *client
		switch n {
		case "coord":
			c = coordClient(ctx, root, tmpBin)
		case "aria2c":
			c = aria2Client()
		case "rain":
			c = rainClient(filepath.Join(refbin, "rain"))
		case "anacrolix":
			c = anacrolixClient(filepath.Join(refbin, "anacrolix-torrent"))
		case "transmission":
			c = transmissionClient(netns)
		}
		cs = append(cs, c)
	}
	return cs
}

func needsInstall(names []string, refbin string) bool {
	for _, n := range names {
		switch n {
		case "aria2c", "transmission":
			if _, err := exec.LookPath(map[string]string{"aria2c": "aria2c", "transmission": "transmission-cli"}[n]); err != nil {
				return true
			}
		case "rain":
			if !executable(filepath.Join(refbin, "rain")) {
				return true
			}
		case "anacrolix":
			if !executable(filepath.Join(refbin, "anacrolix-torrent")) {
				return true
			}
		}
	}
	for _, p := range []string{"opentracker"} {
		if _, err := exec.LookPath(p); err != nil {
			return true
		}
	}
	return false
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// coordClient builds ./cmd/coord into tmpBin.
func coordClient(ctx context.Context, root, tmpBin string) *client {
	c := &client{Name: "coord", ExitsWhenDone: true}
	bin := filepath.Join(tmpBin, "coord")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/coord")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		msg := strings.Join(firstLines(string(out), 3), "; ")
		c.Skip = fmt.Sprintf("not built (error %v: %s)", err, msg)
		return c
	}
	c.Path = bin
	c.Version = firstLine(exec.Command(bin, "version")) + ", checkout " + gitRevision(root)
	c.Args = func(e runEnv) ([]string, error) {
		return []string{"download", "--dht=false", "--out", e.OutDir, "--listen", fmt.Sprintf("%s:%d", e.IP, e.Port), e.Torrent}, nil
	}
	return c
}

func aria2Client() *client {
	c := &client{Name: "aria2c", ExitsWhenDone: true}
	p, err := exec.LookPath("aria2c")
	if err != nil {
		c.Skip = "not installed (apt-get install aria2)"
		return c
	}
	c.Path = p
	c.Version = firstLine(exec.Command(p, "--version"))
	c.Args = func(e runEnv) ([]string, error) {
		return lab.Aria2LeechArgs(e.IP, e.Port, e.OutDir, e.Torrent), nil
	}
	return c
}

// rainClient runs `rain download` in OutDir (it saves to "."), with a
// config that turns off DHT, PEX, RPC and the blocklist and pins the port.
func rainClient(path string) *client {
	c := &client{Name: "rain", ExitsWhenDone: true}
	if !executable(path) {
		c.Skip = "not installed (scripts/install-reference-clients.sh)"
		return c
	}
	c.Path = path
	c.Version = "rain " + moduleVersion(path, "github.com/cenkalti/rain")
	c.Args = func(e runEnv) ([]string, error) {
		cfg := fmt.Sprintf("host: %s\nportbegin: %d\nportend: %d\ndhtenabled: false\npexenabled: false\n"+
			"rpcenabled: false\nresumeonstartup: false\nblocklistenabledfortrackers: false\n"+
			"blocklistenabledforoutgoingconnections: false\nblocklistenabledforincomingconnections: false\n",
			e.IP, e.Port, e.Port+1)
		cfgPath := filepath.Join(filepath.Dir(e.OutDir), "rain.yaml")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			return nil, err
		}
		return []string{"download", "--config", cfgPath, "--torrent", e.Torrent}, nil
	}
	return c
}

// anacrolixClient runs anacrolix/torrent's `torrent download` in OutDir
// (it saves to the working directory).
func anacrolixClient(path string) *client {
	c := &client{Name: "anacrolix", ExitsWhenDone: true}
	if !executable(path) {
		c.Skip = "not installed (scripts/install-reference-clients.sh)"
		return c
	}
	c.Path = path
	c.Version = "anacrolix/torrent " + moduleVersion(path, "github.com/anacrolix/torrent")
	c.Args = func(e runEnv) ([]string, error) {
		return []string{"download", "--addr=" + fmt.Sprintf("%s:%d", e.IP, e.Port),
			"--no-dht", "--no-pex", "--no-port-forward", "--no-utp-peers", "--no-webtorrent",
			"--no-ipv6", "--no-progress", "--quiet", e.Torrent}, nil
	}
	return c
}

// transmissionClient runs transmission-cli, which keeps running after the
// download (the bench stops it once the output is complete and correct).
// It refuses peers in 127.0.0.0/8 as "martians", so it needs the netns lab.
func transmissionClient(netns bool) *client {
	c := &client{Name: "transmission-cli"}
	if !netns {
		c.Skip = "needs the netns lab (--lab netns, as root): it refuses 127.0.0.0/8 peers as martians"
		return c
	}
	p, err := exec.LookPath("transmission-cli")
	if err != nil {
		c.Skip = "not installed (apt-get install transmission-cli)"
		return c
	}
	c.Path = p
	c.Version = firstLine(exec.Command(p, "--version"))
	c.Args = func(e runEnv) ([]string, error) {
		cfgDir := filepath.Join(filepath.Dir(e.OutDir), "transmission")
		return lab.TransmissionArgs(cfgDir, e.IP, e.Port, e.OutDir, e.Torrent)
	}
	return c
}

// moduleVersion is the version of module mod linked into the binary.
func moduleVersion(bin, mod string) string {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return "?"
	}
	if bi.Main.Path == mod {
		return bi.Main.Version
	}
	for _, d := range bi.Deps {
		if d.Path == mod {
			return d.Version
		}
	}
	return "?"
}

// gitRevision describes the checkout coord was built from.
func gitRevision(root string) string {
	cmd := exec.Command("git", "-C", root, "describe", "--always", "--dirty")
	return firstLine(cmd)
}

// firstLine runs cmd (bounded to 5 s) and returns its first output line.
func firstLine(cmd *exec.Cmd) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	out, err := c.CombinedOutput()
	if err != nil && len(out) == 0 {
		return "?"
	}
	if l := firstLines(string(out), 1); len(l) > 0 {
		return l[0]
	}
	return "?"
}

func firstLines(s string, n int) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
			if len(out) == n {
				break
			}
		}
	}
	return out
}

// parseClients splits and checks the --clients list.
func parseClients(s string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		switch n {
		case "":
			continue
		case "transmission-cli":
			n = "transmission"
		case "anacrolix-torrent", "anacrolix/torrent":
			n = "anacrolix"
		}
		ok := false
		for _, k := range knownClients {
			ok = ok || k == n
		}
		if !ok {
			return nil, fmt.Errorf("unknown client %q (known: %s)", n, strings.Join(knownClients, ","))
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no clients given")
	}
	return out, nil
}

// parseSize reads "1GiB", "256MiB", "512M" (K/M/G/T are powers of 1024,
// KB/MB/GB/TB powers of 1000) or plain bytes.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suf string
		m   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1}} {
		if strings.HasSuffix(t, u.suf) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suf)), u.m
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n <= 0 || n*float64(mult) > 1<<50 {
		return 0, fmt.Errorf("bad size %q (examples: 1GiB, 256MiB, 1048576)", s)
	}
	return int64(n * float64(mult)), nil
}
