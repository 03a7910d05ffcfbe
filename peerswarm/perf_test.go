package peerswarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"flotilla/internal/bitfield"
	"flotilla/metainfo"
	"flotilla/piecestore"
	"flotilla/swarm"
)

// perfChildEnv makes the test binary run perfChild instead of the tests
// (see TestMain): the download half of the loopback measurement, in a
// process of its own so that its CPU time and peak RSS are its own.
const perfChildEnv = "FLOTILLA_PERF_CHILD"

// perfResult is one child download.
type perfResult struct {
	wall   time.Duration
	cpu    time.Duration
	rssMiB int64
	line   string // the child's "perf:" line
}

// runPerfChild downloads from 3 aria2c seeders on loopback (1 MiB pieces)
// in a child process, checks the output byte for byte (unless
// FLOTILLA_PERF_NULL discards it) and returns the child's figures.
func runPerfChild(tb testing.TB, torrentPath string, seeders []string, verify func(dir string) error) perfResult {
	tb.Helper()
	out := tb.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), perfChildEnv+"="+torrentPath+","+out+","+strings.Join(seeders, ","))
	start := time.Now()
	b, err := cmd.CombinedOutput()
	wall := time.Since(start)
	if err != nil {
		tb.Fatalf("download child: %v\n%s", err, b)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	res := perfResult{wall: wall, cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), rssMiB: ru.Maxrss >> 10}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "perf:") || os.Getenv("FLOTILLA_PERF_TRACE") != "" {
			res.line += strings.TrimSpace(l) + "\n"
		}
	}
	if os.Getenv("FLOTILLA_PERF_NULL") == "" {
		if err := verify(out); err != nil {
			tb.Fatalf("downloaded payload: %v", err)
		}
	}
	os.RemoveAll(out)
	return res
}

// TestPerfAria2 downloads a payload (32 MiB, or FLOTILLA_PERF_MB) with 1 MiB
// pieces from 3 aria2c seeders on loopback, in a child process, and checks
// it byte for byte. It runs in CI (testenv: aria2c, opentracker and
// mktorrent are required there); it logs wall time, CPU seconds and the
// child's peak RSS but never fails on them — BenchmarkPerfAria2 is the
// measurement:
//
//	FLOTILLA_PERF_MB=1024 go test -run '^$' -bench PerfAria2 -benchtime 1x ./swarm
//
// FLOTILLA_PERF_NULL=1 discards pieces instead of writing them (network
// path alone); FLOTILLA_PERF_TRACE=1 logs the status every 250 ms;
// FLOTILLA_PERF_PROFILE=path writes the child's CPU profile to path.cpu.
func TestPerfAria2(t *testing.T) {
	mb := perfMB(32)
	sw := startAria2Swarm(t, int64(mb)<<20, 1<<20, 3)
	r := runPerfChild(t, sw.Torrent.Path, sw.SeederAddrs, sw.Payload.Verify)
	t.Logf("%d MiB, process wall %v, CPU %.2fs, peak RSS %d MiB\n%s", mb, r.wall.Round(time.Millisecond), r.cpu.Seconds(), r.rssMiB, r.line)
}

// BenchmarkPerfAria2 is TestPerfAria2 as a measurement (256 MiB, or
// FLOTILLA_PERF_MB): MB/s of the whole child process (start to exit),
// its CPU seconds and peak RSS, worst of b.N runs for the RSS.
func BenchmarkPerfAria2(b *testing.B) {
	mb := perfMB(256)
	sw := startAria2Swarm(b, int64(mb)<<20, 1<<20, 3)
	var wall, cpu time.Duration
	var rss int64
	b.ResetTimer()
	for range b.N {
		r := runPerfChild(b, sw.Torrent.Path, sw.SeederAddrs, sw.Payload.Verify)
		wall += r.wall
		cpu += r.cpu
		rss = max(rss, r.rssMiB)
		b.Logf("%s", r.line)
	}
	b.ReportMetric(float64(mb)*float64(1<<20)/1e6*float64(b.N)/wall.Seconds(), "MB/s")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(rss), "peak-RSS-MiB")
}

func perfMB(def int) int {
	if mb, _ := strconv.Atoi(os.Getenv("FLOTILLA_PERF_MB")); mb > 0 {
		return mb
	}
	return def
}

// perfChild is the download half of TestPerfAria2 and BenchmarkPerfAria2,
// run by TestMain in the child process. It prints a "perf:" line.
func perfChild(arg string, stdout io.Writer) error {
	parts := strings.Split(arg, ",")
	if len(parts) < 3 {
		return fmt.Errorf("%s=%q: want torrent,outdir,seeder...", perfChildEnv, arg)
	}
	if prof := os.Getenv("FLOTILLA_PERF_PROFILE"); prof != "" {
		f, err := os.Create(prof + ".cpu")
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	tor, err := metainfo.Load(parts[0])
	if err != nil {
		return err
	}
	scfg := piecestore.DefaultConfig()
	scfg.Dir, scfg.Info, scfg.InfoHash = parts[1], tor.Info, tor.InfoHash
	scfg.Preallocate = os.Getenv("FLOTILLA_PERF_PREALLOC") != ""
	st, err := piecestore.Open(scfg)
	if err != nil {
		return err
	}
	cfg := swarm.DefaultConfig()
	cfg.Info, cfg.InfoHash, cfg.Storage = tor.Info, tor.InfoHash, st
	copy(cfg.PeerID[:], fmt.Sprintf("-FL0001-%012d", time.Now().UnixNano()%1e12))
	if v, _ := strconv.Atoi(os.Getenv("FLOTILLA_PERF_INFLIGHT_MB")); v > 0 {
		cfg.MaxInFlightBytes = int64(v) << 20
	}
	if os.Getenv("FLOTILLA_PERF_NULL") != "" {
		cfg.Storage = nullStorage{written: make(chan int, tor.Info.NumPieces()), n: tor.Info.NumPieces()}
	}
	start := time.Now()
	d, err := startDownload(cfg)
	if err != nil {
		st.Close()
		return err
	}
	var addrs []netip.AddrPort
	for _, a := range parts[2:] {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			d.Close()
			st.Close()
			return err
		}
		addrs = append(addrs, ap)
	}
	d.AddPeers(addrs)
	trace := os.Getenv("FLOTILLA_PERF_TRACE") != ""
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(300 * time.Second)
	var firstBlock time.Duration
	var failed error
wait:
	for {
		select {
		case <-d.Complete():
			break wait
		case <-timeout:
			failed = fmt.Errorf("not complete after 300 s: %+v", d.Status())
			break wait
		case <-tick.C:
		}
		if fb := d.Local().req.firstBlock.Load(); firstBlock == 0 && fb != 0 {
			firstBlock = time.Duration(fb - start.UnixNano())
		}
		if trace {
			s := d.Status()
			w := s.Workers[0]
			fmt.Fprintf(stdout, "act %d ver %d wr %d | peers %d out %d active %d leased %d rate %.0f MB/s\n",
				s.Active, s.Verified, s.Written, w.Peers, w.Outstanding, w.Active, w.Leased, w.DownRate/1e6)
		}
	}
	took := time.Since(start)
	if fb := d.Local().req.firstBlock.Load(); firstBlock == 0 && fb != 0 {
		firstBlock = time.Duration(fb - start.UnixNano())
	}
	s := d.Status()
	d.Close()
	if err := st.Close(); err != nil && failed == nil {
		failed = err
	}
	if failed != nil {
		return failed
	}
	fmt.Fprintf(stdout, "perf: %.0f MB/s (%v), first request %v, downloaded %d, wasted %d, waited on storage %v\n",
		float64(tor.Info.Length)/1e6/took.Seconds(), took.Round(time.Millisecond), firstBlock.Round(time.Millisecond), s.Downloaded, s.Workers[0].Wasted, s.StorageWait.Round(time.Millisecond))
	return nil
}

// nullStorage discards pieces (measures the network path alone).
type nullStorage struct {
	written chan int
	n       int
}

func (s nullStorage) Have() []byte { return bitfield.New(s.n) }
func (s nullStorage) Submit(_ context.Context, p int, _ []byte) error {
	s.written <- p
	return nil
}
func (s nullStorage) Written() <-chan int                       { return s.written }
func (s nullStorage) ReadBlock(int, int64, []byte) (int, error) { return 0, errors.New("null") }
func (s nullStorage) Err() error                                { return nil }
