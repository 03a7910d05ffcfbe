package lab_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"flotilla/internal/lab"
	"flotilla/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newCleanup returns a Cleanup run at the end of the test.
func newCleanup(t *testing.T) *lab.Cleanup {
	t.Helper()
	cl := &lab.Cleanup{}
	t.Cleanup(cl.Run)
	return cl
}

// TestLoopbackSwarm builds an 8 MiB swarm with two aria2c seeders and
// downloads it with an aria2c leecher, checking every byte; then checks
// that teardown killed every process.
func TestLoopbackSwarm(t *testing.T) {
	testenv.Require(t, "opentracker", "aria2c")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := newCleanup(t)
	cfg := lab.DefaultSwarmConfig()
	cfg.Dir = t.TempDir()
	cfg.Payload.Size = 8 << 20
	cfg.PieceLength = 256 << 10
	cfg.Seeders = 2
	sw, err := lab.StartLoopbackSwarm(ctx, cl, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := sw.Tracker.ScrapeInfo(ctx, sw.Torrent.InfoHash); err != nil || r.Complete != 2 {
		t.Fatalf("scrape = %+v, %v; want 2 complete", r, err)
	}
	if len(sw.SeederAddrs) != 2 || sw.SeederAddrs[0][:10] != "127.0.0.2:" || sw.SeederAddrs[1][:10] != "127.0.0.3:" {
		t.Fatalf("seeder addresses %v, want 127.0.0.2:* and 127.0.0.3:*", sw.SeederAddrs)
	}

	out := t.TempDir()
	port, err := lab.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	leech := lab.Loopback("127.0.0.1").Command(ctx, "aria2c", lab.Aria2LeechArgs("127.0.0.1", port, out, sw.Torrent.Path)...)
	p, err := lab.StartProc(cl, "leecher", leech, filepath.Join(cfg.Dir, "logs", "leecher.log"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-ctx.Done():
		t.Fatalf("leecher did not finish: %s", p.Tail(500))
	}
	if err := p.Err(); err != nil {
		t.Fatalf("leecher: %v: %s", err, p.Tail(500))
	}
	if err := sw.Payload.Verify(out); err != nil {
		t.Fatal(err)
	}
	if ru, ok := p.Cmd.ProcessState.SysUsage().(*syscall.Rusage); !ok || ru.Maxrss == 0 {
		t.Fatalf("no rusage for the leecher: %#v", p.Cmd.ProcessState.SysUsage())
	}

	// A corrupted byte is caught.
	f := filepath.Join(out, sw.Payload.Files[0].Rel)
	fh, err := os.OpenFile(f, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteAt([]byte{0}, 12345); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	if err := sw.Payload.Verify(out); !errors.Is(err, lab.ErrMismatch) {
		t.Fatalf("Verify of corrupted output = %v, want ErrMismatch", err)
	}

	cl.Run()
	for _, p := range append(sw.Seeders, sw.Tracker.Proc) {
		if !p.Exited() {
			t.Errorf("%s still running after teardown", p.Name)
		}
		if err := syscall.Kill(p.Cmd.Process.Pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s (pid %d) still exists after teardown: %v", p.Name, p.Cmd.Process.Pid, err)
		}
	}
}

// TestStartSwarmBadConfig: a swarm whose piece length is not a power of two
// is refused before anything starts.
func TestStartSwarmBadConfig(t *testing.T) {
	cl := newCleanup(t)
	cfg := lab.DefaultSwarmConfig()
	cfg.Dir = t.TempDir()
	cfg.PieceLength = 1000 // not a power of two
	if _, err := lab.StartLoopbackSwarm(context.Background(), cl, cfg); err == nil {
		t.Fatal("piece length 1000 accepted")
	}
}
