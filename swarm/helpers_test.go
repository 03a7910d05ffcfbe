package swarm

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"flotilla/swarm/swarmtest"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if arg := os.Getenv(perfChildEnv); arg != "" {
		// The child process of TestPerfAria2 / BenchmarkPerfAria2.
		if err := perfChild(arg, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "perf child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

func testConfig(tt *swarmtest.Torrent, st Storage, id byte) Config {
	cfg := DefaultConfig()
	cfg.Info = tt.Info
	cfg.InfoHash = tt.InfoHash
	copy(cfg.PeerID[:], "-FL0001-testpeer0000")
	cfg.PeerID[19] = id
	cfg.Storage = st
	cfg.StatusInterval = 50 * time.Millisecond
	return cfg
}

func listen(t testing.TB, ip string) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp4", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func newTestDownload(t testing.TB, cfg Config) *Download {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func waitComplete(t testing.TB, d *Download, timeout time.Duration) {
	t.Helper()
	select {
	case <-d.Complete():
	case <-time.After(timeout):
		st := d.Status()
		t.Fatalf("download not complete after %v: %+v", timeout, st)
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
