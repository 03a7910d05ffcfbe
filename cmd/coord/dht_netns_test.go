package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"flotilla/dht"
	"flotilla/internal/lab"
	"flotilla/internal/testenv"
	"flotilla/metainfo"
)

// TestDownloadFoundOnlyThroughLocalDHT: a torrent with no tracker,
// seeded by transmission and by aria2c whose DHT nodes join a local DHT
// of ten of our nodes, is downloaded by coord download, whose only way to
// its peers is that DHT (--dht-bootstrap; no tracker, no --peer): thirteen
// DHT nodes of three implementations. Then the same from its magnet link,
// whose info too comes from peers only the DHT knows.
//
// Every program runs in a network namespace with no route out:
// transmission bootstraps from its dht.bootstrap file, and when its table
// stays small (under 40 good nodes) it also tries dht.transmissionbt.com,
// which cannot resolve or be reached from there. Transmission's DHT also
// ignores nodes in 127.0.0.0/8, so this could not run on loopback.
func TestDownloadFoundOnlyThroughLocalDHT(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, "ip", "aria2c", "transmission-cli")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cl := &lab.Cleanup{}
	t.Cleanup(cl.Run)
	hosts, err := lab.NewStar(ctx, cl, lab.StarConfig{Hosts: []string{"dht", "transmission", "aria2", "client"}, Subnet: "10.219.5"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, err := lab.WritePayload(filepath.Join(dir, "data"), lab.PayloadSpec{Name: "payload.bin", Seed: 44, Size: 3<<20 + 4321})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p.Path)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := metainfo.Build("payload.bin", []metainfo.File{{Length: 3<<20 + 4321}}, 1<<18, nil, f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	torPath := filepath.Join(dir, "dht-only.torrent")
	if err := os.WriteFile(torPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	tor, err := metainfo.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	ih := dht.ID(tor.InfoHash)

	// Our ten nodes, their sockets in the "dht" namespace.
	nodes := make([]*dht.Node, 0, 10)
	dh := hosts["dht"]
	for len(nodes) < 10 {
		c := dht.DefaultConfig()
		c.Listen = dh.IP() + ":0"
		c.Bootstrap = []string{dh.IP() + ":9"} // nobody: the first node
		if len(nodes) > 0 {
			c.Bootstrap = []string{nodes[0].Addr().String()}
		}
		c.QueryRate = 0 // our ten nodes share one address
		c.QueryTimeout, c.Tick = time.Second, 100*time.Millisecond
		var n *dht.Node
		if err := dh.Do(func() (err error) { n, err = dht.New(c); return err }); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		nodes = append(nodes, n)
	}
	testenv.WaitFor(t, 2*time.Minute, "our ten nodes to know one another", func() bool {
		ok := true
		for _, n := range nodes {
			if s, err := n.Stats(ctx); err == nil && s.Nodes < 5 {
				// a node joins through one find_node lookup; another
				// lookup (for a random id) meets the nodes that joined later
				n.GetPeers(ctx, dht.RandomID(), dht.LookupOptions{})
				ok = false
			}
		}
		return ok
	})

	// transmission seeding, its DHT bootstrapped from three of our nodes.
	th := hosts["transmission"]
	trPort, err := th.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfgDir := filepath.Join(dir, "transmission")
	os.MkdirAll(cfgDir, 0o755)
	settings := fmt.Sprintf(`{"dht-enabled": true, "lpd-enabled": false, "pex-enabled": false,
 "port-forwarding-enabled": false, "utp-enabled": false, "blocklist-enabled": false,
 "peer-port": %d, "bind-address-ipv4": %q, "preallocation": 0, "message-level": 3}`, trPort, th.IP())
	var boot strings.Builder
	for _, n := range nodes[:3] {
		fmt.Fprintf(&boot, "%s %d\n", n.Addr().Addr(), n.Addr().Port())
	}
	for name, content := range map[string]string{"settings.json": settings, "dht.bootstrap": boot.String()} {
		if err := os.WriteFile(filepath.Join(cfgDir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	trLog := filepath.Join(dir, "transmission.log")
	if _, err := lab.StartProc(cl, "transmission", th.Command(ctx, "transmission-cli", "-g", cfgDir, "-w", filepath.Dir(p.Path),
		"-p", strconv.Itoa(trPort), "-M", "-D", "-U", torPath), trLog); err != nil {
		t.Fatal(err)
	}

	// aria2c seeding, its DHT entering through another of our nodes.
	ah := hosts["aria2"]
	a2Port, err := ah.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	a2Log := filepath.Join(dir, "aria2c.log")
	if _, err := lab.StartProc(cl, "aria2c", ah.Command(ctx, "aria2c", "--no-conf=true", "--interface="+ah.IP(),
		"--listen-port="+strconv.Itoa(a2Port), "--enable-dht=true", "--enable-dht6=false",
		"--dht-listen-port="+strconv.Itoa(a2Port), "--dht-entry-point="+nodes[4].Addr().String(),
		"--dht-file-path="+filepath.Join(dir, "aria2-dht.dat"), "--bt-enable-lpd=false", "--enable-peer-exchange=false",
		"--disable-ipv6=true", "--file-allocation=none", "--summary-interval=0", "--console-log-level=warn",
		"--dir="+filepath.Dir(p.Path), "--check-integrity=true", "--bt-hash-check-seed=true", "--seed-ratio=0.0",
		torPath), a2Log); err != nil {
		t.Fatal(err)
	}

	// Both announced themselves into our DHT.
	want := []netip.AddrPort{
		netip.MustParseAddrPort(net.JoinHostPort(th.IP(), strconv.Itoa(trPort))),
		netip.MustParseAddrPort(net.JoinHostPort(ah.IP(), strconv.Itoa(a2Port))),
	}
	var found []netip.AddrPort
	testenv.WaitFor(t, 3*time.Minute, "transmission and aria2c to announce themselves in our DHT", func() bool {
		res, err := nodes[7].GetPeers(ctx, ih, dht.LookupOptions{})
		if err != nil {
			return true
		}
		found = res.Peers
		return slices.Contains(found, want[0]) && slices.Contains(found, want[1])
	})
	if !slices.Contains(found, want[0]) || !slices.Contains(found, want[1]) {
		for _, l := range []string{trLog, a2Log} {
			b, _ := os.ReadFile(l)
			t.Logf("%s:\n%s", l, b)
		}
		t.Fatalf("our DHT found %v, want %v", found, want)
	}

	// coord, whose only way to the seeders is the DHT.
	ch := hosts["client"]
	out := filepath.Join(dir, "out")
	proc := startCoordCmd(t, ch.Command(ctx, coordBinary(t), "download", torPath, "--out", out,
		"--listen", ch.IP()+":6881", "--dht", "--dht-bootstrap", nodes[9].Addr().String(),
		"--dht-listen", ch.IP()+":6881", "--dht-state", "none", "--progress", "log", "-v"))
	if code := proc.wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("coord download: exit %d\n%s", code, proc.out.String())
	}
	if err := p.Verify(out); err != nil {
		t.Fatal(err)
	}

	// The same through a magnet link: the info, too, comes from peers
	// only the DHT knows.
	out2 := filepath.Join(dir, "out-magnet")
	proc = startCoordCmd(t, ch.Command(ctx, coordBinary(t), "download", tor.Magnet().String(), "--out", out2,
		"--listen", ch.IP()+":6882", "--dht", "--dht-bootstrap", nodes[8].Addr().String(),
		"--dht-listen", ch.IP()+":6882", "--dht-state", "none", "--progress", "log"))
	if code := proc.wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("coord download of the magnet: exit %d\n%s", code, proc.out.String())
	}
	if err := p.Verify(out2); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(trLog); testing.Verbose() {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "DHT") && len(l) < 200 { // not the status lines
				t.Log("transmission: " + l)
			}
		}
	}
}
