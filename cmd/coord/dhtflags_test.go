package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDHTFlags: the DHT flags' errors say what to do, and a test that
// asks for the DHT without its own bootstrap list fails (the guard).
func TestDHTFlags(t *testing.T) {
	tor, _ := writeTorrent(t, nil)
	if code, _, errs := runCoord(t, "download", tor, "--out", t.TempDir(), "--listen", "127.0.0.1:0", "--dht", "--dht-listen", "127.0.0.1:0"); code != 1 || !strings.Contains(errs, "public bootstrap") {
		t.Errorf("public routers under test: code %d, stderr %q", code, errs)
	}
	if code, _, errs := runCoord(t, "download", tor, "--out", t.TempDir(), "--dht", "--dht-bootstrap", "nonsense"); code != 1 || !strings.Contains(errs, "want HOST:PORT") {
		t.Errorf("bad bootstrap: code %d, stderr %q", code, errs)
	}
	busy, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if code, _, errs := runCoord(t, "download", tor, "--out", t.TempDir(), "--listen", "127.0.0.1:0", "--dht",
		"--dht-bootstrap", "127.0.0.1:9", "--dht-listen", busy.LocalAddr().String()); code != 1 || !strings.Contains(errs, "--dht-listen") {
		t.Errorf("DHT port in use: code %d, stderr %q", code, errs)
	}
}

// TestDHTGuardInSpawnedCoord: coord started by a test as a program of its
// own, where testing.Testing is false, still refuses the public routers
// (internal/testenv sets dht.EnvNoPublic, which the child inherits): the
// DHT is on by default, and a test that forgot --dht-bootstrap or
// --dht=false fails instead of reaching the public DHT.
func TestDHTGuardInSpawnedCoord(t *testing.T) {
	tor, _ := writeTorrent(t, nil)
	cmd := exec.Command(coordBinary(t), "download", tor, "--out", t.TempDir(), "--listen", "127.0.0.1:0",
		"--dht-listen", "127.0.0.1:0", "--dht-state", "none", "--progress", "none")
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(string(out), "public bootstrap") {
		t.Fatalf("coord download with the default DHT under a test: exit %d (%v), output %q", code, err, out)
	}
}

// TestDHTStateDefault: download and seed keep the routing table in the
// user's cache directory, serve in its state directory; "none" keeps none.
func TestDHTStateDefault(t *testing.T) {
	home := t.TempDir()
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"HOME": home}, filepath.Join(home, ".cache", "flotilla", "dht.json")},
		{map[string]string{"HOME": home, "XDG_CACHE_HOME": filepath.Join(home, "xdg")}, filepath.Join(home, "xdg", "flotilla", "dht.json")},
		{map[string]string{}, ""},
	} {
		if got := userDHTState(func(k string) string { return c.env[k] }); got != c.want {
			t.Errorf("%v: %q, want %q", c.env, got, c.want)
		}
	}
	o := dhtOpts{on: true, bootstrap: "127.0.0.1:9"}
	cfg, err := o.config(filepath.Join(home, "new", "dht.json"))
	if err != nil || cfg.StateFile != filepath.Join(home, "new", "dht.json") || cfg.Listen != defaultDHTListen || cfg.ListenFallback == "" {
		t.Fatalf("default: %+v %v", cfg, err)
	}
	if st, err := os.Stat(filepath.Join(home, "new")); err != nil || !st.IsDir() {
		t.Fatalf("the state file's directory was not created: %v", err)
	}
	o.state, o.listen = "none", "127.0.0.1:7000"
	if cfg, err = o.config(filepath.Join(home, "x.json")); err != nil || cfg.StateFile != "" || cfg.ListenFallback != "" {
		t.Fatalf("--dht-state none --dht-listen: %+v %v", cfg, err)
	}
	if cfg, _ = (dhtOpts{}).config("x"); cfg != nil {
		t.Fatalf("--dht=false: %+v", cfg)
	}
}
