package swarm

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"flotilla/metainfo"
	"flotilla/piecestore"
)

// TestPerfAria2 downloads a large payload (1 MiB pieces) from 3 aria2c
// seeders on loopback in a child process and reports wall time, MB/s, CPU
// seconds and the child's peak RSS. It is a measurement, not a unit test:
// it runs only with FLOTILLA_PERF_MB set, e.g.
//
//	FLOTILLA_PERF_MB=1024 go test -run PerfAria2 -v ./swarm
//
// FLOTILLA_PERF_NULL=1 discards pieces instead of writing them (network
// path alone); FLOTILLA_PERF_TRACE=1 logs the status every 250 ms.
func TestPerfAria2(t *testing.T) {
	mb, _ := strconv.Atoi(os.Getenv("FLOTILLA_PERF_MB"))
	if mb <= 0 {
		t.Skip("set FLOTILLA_PERF_MB to run the loopback throughput measurement")
	}
	runs, _ := strconv.Atoi(os.Getenv("FLOTILLA_PERF_RUNS"))
	runs = max(runs, 1)
	sw := startAria2Swarm(t, int64(mb)<<20, 1<<20, 3)
	for r := range runs {
		out := t.TempDir()
		args := []string{"-test.run=^TestPerfChild$", "-test.v"}
		if prof := os.Getenv("FLOTILLA_PERF_PROFILE"); prof != "" {
			args = append(args, "-test.cpuprofile="+prof+".cpu", "-test.memprofile="+prof+".mem")
		}
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), "FLOTILLA_PERF_CHILD="+sw.Torrent.Path+","+out+","+strings.Join(sw.SeederAddrs, ","))
		start := time.Now()
		b, err := cmd.CombinedOutput()
		took := time.Since(start)
		if err != nil {
			t.Fatalf("child: %v\n%s", err, b)
		}
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		var childLine string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "perf:") || os.Getenv("FLOTILLA_PERF_TRACE") != "" {
				childLine += strings.TrimSpace(l) + "\n"
			}
		}
		t.Logf("run %d: %d MiB, process wall %v, CPU %.2fs, peak RSS %d MiB\n%s", r, mb, took.Round(time.Millisecond), cpu.Seconds(), ru.Maxrss>>10, childLine)
		if os.Getenv("FLOTILLA_PERF_NULL") == "" {
			if err := sw.Payload.Verify(out); err != nil {
				t.Fatal(err)
			}
		}
		os.RemoveAll(out)
	}
}

// TestPerfChild is the download half of TestPerfAria2 (a child process).
func TestPerfChild(t *testing.T) {
	arg := os.Getenv("FLOTILLA_PERF_CHILD")
	if arg == "" {
		t.Skip("child of TestPerfAria2 only")
	}
	parts := strings.Split(arg, ",")
	tor, err := metainfo.Load(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	scfg := piecestore.DefaultConfig()
	scfg.Dir, scfg.Info, scfg.InfoHash = parts[1], tor.Info, tor.InfoHash
	scfg.Preallocate = os.Getenv("FLOTILLA_PERF_PREALLOC") != ""
	st, err := piecestore.Open(scfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Info, cfg.InfoHash, cfg.Storage = tor.Info, tor.InfoHash, st
	copy(cfg.PeerID[:], fmt.Sprintf("-FL0001-%012d", time.Now().UnixNano()%1e12))
	if v, _ := strconv.Atoi(os.Getenv("FLOTILLA_PERF_INFLIGHT_MB")); v > 0 {
		cfg.MaxInFlightBytes = int64(v) << 20
	}
	if os.Getenv("FLOTILLA_PERF_NULL") != "" {
		cfg.Storage = nullStorage{written: make(chan int, tor.Info.NumPieces()), n: tor.Info.NumPieces()}
	}
	if os.Getenv("FLOTILLA_DEBUG") != "" {
		cfg.Logger = testLogger(t)
	}
	start := time.Now()
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var addrs []netip.AddrPort
	for _, a := range parts[2:] {
		addrs = append(addrs, netip.MustParseAddrPort(a))
	}
	d.AddPeers(addrs)
	var firstBlock time.Duration
	go func() {
		for {
			select {
			case <-d.Complete():
				return
			case <-time.After(250 * time.Millisecond):
			}
			if os.Getenv("FLOTILLA_PERF_TRACE") != "" {
				s := d.Status()
				w := s.Workers[0]
				t.Logf("act %d ver %d wr %d | peers %d out %d active %d leased %d rate %.0f MB/s",
					s.Active, s.Verified, s.Written, w.Peers, w.Outstanding, w.Active, w.Leased, w.DownRate/1e6)
			}
		}
	}()
	for firstBlock == 0 {
		if d.Local().firstBlock.Load() != 0 {
			firstBlock = time.Duration(d.Local().firstBlock.Load() - start.UnixNano())
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case <-d.Complete():
	case <-time.After(120 * time.Second):
		t.Errorf("not complete: %+v", d.Status())
	}
	took := time.Since(start)
	s := d.Status()
	d.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("perf: %.0f MB/s (%v), first request %v, downloaded %d, wasted %d, waited on storage %v\n",
		float64(tor.Info.Length)/1e6/took.Seconds(), took.Round(time.Millisecond), firstBlock.Round(time.Millisecond), s.Downloaded, s.Workers[0].Wasted, s.StorageWait.Round(time.Millisecond))
}

// nullStorage discards pieces (measures the network path alone).
type nullStorage struct {
	written chan int
	n       int
}

func (s nullStorage) Have() []byte { return make([]byte, (s.n+7)/8) }
func (s nullStorage) Submit(_ context.Context, p int, _ []byte) error {
	s.written <- p
	return nil
}
func (s nullStorage) Written() <-chan int                       { return s.written }
func (s nullStorage) ReadBlock(int, int64, []byte) (int, error) { return 0, errors.New("null") }
func (s nullStorage) Err() error                                { return nil }
