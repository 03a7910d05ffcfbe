// Package testenv gives tests access to the real programs Flotilla is
// tested against (opentracker, aria2c, transmission-cli, mktorrent) and to
// root-only facilities. A missing program skips the test on a developer's
// machine and fails it under CI (CI=true), so CI can never pass by skipping.
package testenv

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// InCI reports whether the tests run under CI (environment CI=true or 1).
func InCI() bool {
	v := os.Getenv("CI")
	return v == "true" || v == "1"
}

// missing skips t on a laptop and fails it under CI.
func missing(t testing.TB, what string) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s; CI=true so this is a failure, not a skip (.ci/run installs it)", what)
	}
	t.Skipf("%s; skipping (install it, see scripts/install-test-deps.sh)", what)
}

// Require checks that every program is on PATH.
func Require(t testing.TB, programs ...string) {
	t.Helper()
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			missing(t, fmt.Sprintf("test needs %q, which is not on PATH", p))
		}
	}
}

// RequireRoot checks that the test runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "test needs root")
	}
}

// WaitFor polls cond every 10 ms until it is true or timeout passes, in
// which case the test fails naming what it waited for.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// FreePort returns a TCP port on ip that was free a moment ago and whose
// UDP twin could be bound too.
func FreePort(t testing.TB, ip string) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp4", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatalf("free port on %s: %v", ip, err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp4", net.JoinHostPort(ip, strconv.Itoa(port)))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		return port
	}
	t.Fatalf("no free TCP+UDP port on %s", ip)
	return 0
}

// Opentracker is a running opentracker process.
type Opentracker struct {
	HTTPAnnounce string // http://ip:port/announce
	UDPAnnounce  string // udp://ip:port/announce
	Scrape       string // http://ip:port/scrape
	Dir          string // its chroot directory, holding the whitelist
	cmd          *exec.Cmd
}

// StartOpentracker starts the Debian opentracker on ip with free ports and
// the given info-hashes whitelisted (Debian builds it with a whitelist).
// It is stopped in t.Cleanup.
func StartOpentracker(t testing.TB, ip string, infoHashes ...[20]byte) *Opentracker {
	t.Helper()
	Require(t, "opentracker")
	dir := t.TempDir()
	var wl bytes.Buffer
	for _, h := range infoHashes {
		wl.WriteString(hex.EncodeToString(h[:]) + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "whitelist"), wl.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// opentracker drops privileges to -u; the chroot dir must be readable.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var ot *Opentracker
	for attempt := 0; attempt < 5 && ot == nil; attempt++ {
		port := FreePort(t, ip)
		args := []string{"-i", ip, "-p", strconv.Itoa(port), "-P", strconv.Itoa(port),
			"-A", ip, "-d", dir, "-w", "whitelist"}
		if os.Geteuid() == 0 {
			args = append(args, "-u", "nobody")
		}
		cmd := exec.Command("opentracker", args...)
		cmd.Dir = dir
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start opentracker: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		base := fmt.Sprintf("http://%s", net.JoinHostPort(ip, strconv.Itoa(port)))
		up := false
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-exited:
				deadline = time.Now() // retry with another port
				continue
			default:
			}
			resp, err := http.Get(base + "/stats")
			if err == nil {
				resp.Body.Close()
				up = true
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !up {
			cmd.Process.Kill()
			<-exited
			t.Logf("opentracker on port %d did not come up: %s", port, out.String())
			continue
		}
		ot = &Opentracker{
			HTTPAnnounce: base + "/announce",
			UDPAnnounce:  fmt.Sprintf("udp://%s/announce", net.JoinHostPort(ip, strconv.Itoa(port))),
			Scrape:       base + "/scrape",
			Dir:          dir,
			cmd:          cmd,
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-exited
		})
	}
	if ot == nil {
		t.Fatalf("opentracker would not start on %s", ip)
	}
	return ot
}
