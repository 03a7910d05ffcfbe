// Package testenv gives tests access to the real programs Flotilla is
// tested against (opentracker, aria2c, transmission-cli, mktorrent) and to
// root-only facilities. A missing program skips the test on a developer's
// machine and fails it under CI (CI=true), so CI can never pass by skipping.
//
// It also holds the few helpers every package's tests share: WaitFor, the
// one way a test waits for a condition, and SyncBuffer.
package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"flotilla/internal/lab"
)

// dhtNoPublic is dht.EnvNoPublic (this package cannot import dht, whose
// tests import this one; dht's TestTestenvSetsNoPublic checks the name).
const dhtNoPublic = "FLOTILLA_DHT_NO_PUBLIC"

// Every test binary that uses testenv marks its environment so that the
// programs its tests start (coord, as a separate process, where the dht
// package's testing.Testing guard cannot see a test) refuse the public
// DHT routers too: a test must pass --dht-bootstrap or --dht=false.
func init() {
	if testing.Testing() {
		os.Setenv(dhtNoPublic, "1")
	}
}

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

// Unavailable reports that something the test needs (a port, a device)
// is not available: the test is skipped on a laptop and fails under CI.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	missing(t, fmt.Sprintf(format, args...))
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
// which case the test fails naming what it waited for. It is the one
// polling helper of Flotilla's tests (never a bare time.Sleep): the
// arguments are always t, the timeout, what is awaited ("the node to drop
// the session"), then the condition.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	WaitEvery(t, timeout, 10*time.Millisecond, what, cond)
}

// WaitEvery is WaitFor polling every interval, for a condition that costs
// a process or a request to evaluate (kubectl, an API call).
func WaitEvery(t testing.TB, timeout, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(interval)
	}
}

// MountTmpfs mounts a tmpfs of size (as mount takes it: "1m", "64k") on a
// new directory, unmounted in t.Cleanup, for tests of a full disk. It
// needs root and mount(8).
func MountTmpfs(t testing.TB, size string) string {
	t.Helper()
	RequireRoot(t)
	Require(t, "mount", "umount")
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// FreePort returns a TCP port on ip that was free a moment ago and whose
// UDP twin could be bound too.
func FreePort(t testing.TB, ip string) int {
	t.Helper()
	port, err := lab.FreePort(ip)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// TCPPair returns the two ends of a loopback TCP connection, closed in
// t.Cleanup (a net.Pipe deadlocks where both sides write before they
// read, and has no socket options).
func TCPPair(t testing.TB) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan *net.TCPConn, 1)
	go func() {
		c, _ := ln.AcceptTCP()
		acc <- c
	}()
	client, err = net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	server = <-acc
	if server == nil {
		client.Close()
		t.Fatal("loopback accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// Opentracker is a running opentracker process.
type Opentracker struct {
	HTTPAnnounce string // http://ip:port/announce
	UDPAnnounce  string // udp://ip:port/announce
	Scrape       string // http://ip:port/scrape
	Dir          string // its chroot directory, holding the whitelist
}

// StartOpentracker starts the Debian opentracker on ip with free ports and
// the given info-hashes whitelisted (Debian builds it with a whitelist).
// It is stopped in t.Cleanup. (The work is done by internal/lab, which the
// benchmark and the demo share.)
func StartOpentracker(t testing.TB, ip string, infoHashes ...[20]byte) *Opentracker {
	t.Helper()
	Require(t, "opentracker")
	cl := &lab.Cleanup{}
	t.Cleanup(cl.Run)
	ot, err := lab.StartOpentracker(context.Background(), cl, lab.Loopback(ip), filepath.Join(t.TempDir(), "tracker"), infoHashes...)
	if err != nil {
		t.Fatal(err)
	}
	return &Opentracker{HTTPAnnounce: ot.HTTPAnnounce, UDPAnnounce: ot.UDPAnnounce, Scrape: ot.Scrape, Dir: ot.Dir}
}

// SyncBuffer is a bytes.Buffer that a writer and a reader on different
// goroutines may share: a process's output collected while a test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
