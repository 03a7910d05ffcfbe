package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"flotilla/internal/lab"
	"flotilla/internal/testenv"
	"flotilla/metainfo"
	"flotilla/service"
)

// benchTorrent is one generated torrent of the serve benchmark.
type benchTorrent struct {
	name string
	data []byte
	raw  []byte // the .torrent, with the tracker's URL
	ih   [20]byte
}

// makeBenchTorrents builds n single-file torrents of size bytes.
func makeBenchTorrents(b *testing.B, prefix string, n, size int, piece int64, tracker string) []benchTorrent {
	b.Helper()
	out := make([]benchTorrent, n)
	rng := rand.New(rand.NewPCG(uint64(n), uint64(size)))
	for i := range out {
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		name := fmt.Sprintf("%s-%04d.bin", prefix, i)
		raw, err := metainfo.Build(name, []metainfo.File{{Length: int64(size)}}, piece, [][]string{{tracker}}, bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		t, err := metainfo.Parse(raw)
		if err != nil {
			b.Fatal(err)
		}
		out[i] = benchTorrent{name: name, data: data, raw: raw, ih: t.InfoHash}
	}
	return out
}

// procStatus reads a field (in kB) of /proc/PID/status.
func procStatus(b *testing.B, pid int, field string) float64 {
	b.Helper()
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(s), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			f := strings.Fields(v)
			n, _ := strconv.ParseFloat(f[0], 64)
			return n
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// cpuTicks is the process's user+system CPU time in clock ticks.
func cpuTicks(b *testing.B, pid int) float64 {
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(s[bytes.LastIndexByte(s, ')')+2:]))
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return u + st
}

// p99 times f n times and returns the 99th percentile.
func p99(n int, f func()) time.Duration {
	d := make([]time.Duration, n)
	for i := range d {
		start := time.Now()
		f()
		d[i] = time.Since(start)
	}
	slices.Sort(d)
	return d[n*99/100]
}

// BenchmarkServeManyTorrents is issue 11's scale benchmark, scaled by
// FLOTILLA_BENCH_SEEDING (default 1000) and FLOTILLA_BENCH_ACTIVE
// (default 50): coord serve holds that many seeding torrents, then
// downloads the active ones at once from an aria2c seeding them all; it
// reports the daemon's peak RSS, its idle CPU once everything seeds, and
// the p99 latency of list and show while the downloads run. Then it runs
// transmission-daemon on the same seeding torrents (benchTransmission;
// FLOTILLA_BENCH_TRANSMISSION=0 leaves it out) and prints both side by
// side. FLOTILLA_BENCH_OUT=DIR keeps the idle daemon's CPU and heap
// profiles, goroutines and -v log there.
func BenchmarkServeManyTorrents(b *testing.B) {
	testenv.Require(b, "opentracker", "aria2c")
	seeding, active := 1000, 50
	if v, err := strconv.Atoi(os.Getenv("FLOTILLA_BENCH_SEEDING")); err == nil {
		seeding = v
	}
	if v, err := strconv.Atoi(os.Getenv("FLOTILLA_BENCH_ACTIVE")); err == nil {
		active = v
	}
	dir := b.TempDir()
	ctx := context.Background()
	cl := &lab.Cleanup{}
	b.Cleanup(cl.Run)
	probeURL := "http://127.0.0.1:1/announce"
	seeds := makeBenchTorrents(b, "seed", seeding, 64<<10, 64<<10, probeURL)
	downs := makeBenchTorrents(b, "down", active, 2<<20, 256<<10, probeURL)
	var hashes [][20]byte
	for _, t := range append(slices.Clone(seeds), downs...) {
		hashes = append(hashes, t.ih)
	}
	ot, err := lab.StartOpentracker(ctx, cl, lab.Loopback("127.0.0.1"), filepath.Join(dir, "tracker"), hashes...)
	if err != nil {
		b.Fatal(err)
	}
	seeds = makeBenchTorrents(b, "seed", seeding, 64<<10, 64<<10, ot.HTTPAnnounce)
	downs = makeBenchTorrents(b, "down", active, 2<<20, 256<<10, ot.HTTPAnnounce)

	// The seeding torrents' data is where the daemon looks for it.
	for _, t := range seeds {
		d := filepath.Join(dir, "data", fmt.Sprintf("%x", t.ih[:6]))
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, t.name), t.data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	// One aria2c seeds every torrent to download.
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	args := lab.Aria2SeedArgs("127.0.0.20", testenv.FreePort(b, "127.0.0.20"), src, "")
	args = append(args[:len(args)-1], "--max-concurrent-downloads="+strconv.Itoa(active))
	for _, t := range downs {
		os.WriteFile(filepath.Join(src, t.name), t.data, 0o644)
		p := filepath.Join(src, t.name+".torrent")
		os.WriteFile(p, t.raw, 0o644)
		args = append(args, p)
	}
	if _, err := lab.StartProc(cl, "aria2c", exec.Command("aria2c", args...), filepath.Join(dir, "aria2c.log")); err != nil {
		b.Fatal(err)
	}

	out := os.Getenv("FLOTILLA_BENCH_OUT")
	extra := []string{"--max-active", strconv.Itoa(active), "--seed-ratio", "0", "--direct-io=false"}
	if out != "" {
		extra = append(extra, "-v")
	}
	s := startServeB(b, dir, extra...)
	pid := s.cmd.Process.Pid
	client := &service.Client{Server: strings.TrimSuffix(s.api, "/api/v1"), Token: serveToken}
	start := time.Now()
	var seedIDs []string
	for _, t := range seeds {
		in, err := client.Add(ctx, t.raw, service.AddOptions{})
		if err != nil {
			b.Fatal(err)
		}
		seedIDs = append(seedIDs, in.ID)
	}
	count := func(state string) int {
		list, err := client.List(ctx)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for _, j := range list {
			if j.State == state {
				n++
			}
		}
		return n
	}
	testenv.WaitFor(b, 10*time.Minute, "every torrent seeding", func() bool { return count(service.StateSeeding) == seeding })
	coordFig := transmissionFigures{torrents: seeding, seedingAfter: time.Since(start)}
	b.Logf("%d torrents seeding %.1f s after the first add; RSS %.0f MiB", seeding, time.Since(start).Seconds(), procStatus(b, pid, "VmRSS")/1024)

	var ids []string
	start = time.Now()
	for _, t := range downs {
		in, err := client.Add(ctx, t.raw, service.AddOptions{})
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, in.ID)
	}
	b.ResetTimer()
	base := strings.TrimSuffix(s.api, "/api/v1")
	listP99 := p99(200, func() { apiGet(b, base, "/api/v1/torrents") })
	showP99 := p99(200, func() { apiGet(b, base, "/api/v1/torrents/"+ids[rand.IntN(len(ids))]) })
	b.StopTimer()
	testenv.WaitFor(b, 10*time.Minute, "every download complete", func() bool { return count(service.StateSeeding) == seeding+active })
	b.Logf("%d downloads of 2 MiB complete in %.1f s", active, time.Since(start).Seconds())

	time.Sleep(5 * time.Second) // let the completions' announces settle before measuring idle CPU
	t0, c0 := time.Now(), cpuTicks(b, pid)
	time.Sleep(20 * time.Second)
	idle := (cpuTicks(b, pid) - c0) / 100 / time.Since(t0).Seconds() * 100 // ticks are 1/100 s
	peak := procStatus(b, pid, "VmHWM") / 1024
	b.ReportMetric(peak, "peak-RSS-MiB")
	b.ReportMetric(idle, "idle-CPU-%")
	b.ReportMetric(float64(listP99.Microseconds())/1000, "list-p99-ms")
	b.ReportMetric(float64(showP99.Microseconds())/1000, "show-p99-ms")
	// The same requests once everything seeds, as transmission-daemon's.
	coordFig.listP99 = p99(200, func() { apiGet(b, base, "/api/v1/torrents") })
	coordFig.showP99 = p99(200, func() { apiGet(b, base, "/api/v1/torrents/"+seedIDs[rand.IntN(len(seedIDs))]) })
	coordFig.peakRSS, coordFig.idleCPU = peak, idle
	coordFig.torrents = seeding + active
	if out != "" {
		saveProfiles(b, s, out)
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("coord serve did not stop within 2 minutes of SIGTERM")
	}
	if os.Getenv("FLOTILLA_BENCH_TRANSMISSION") == "0" {
		return
	}
	tr := benchTransmission(b, cl, dir, seeds, func(t benchTorrent) string { return filepath.Join(dir, "data", fmt.Sprintf("%x", t.ih[:6])) })
	b.ReportMetric(tr.peakRSS, "tr-peak-RSS-MiB")
	b.ReportMetric(tr.idleCPU, "tr-idle-CPU-%")
	b.ReportMetric(float64(tr.listP99.Microseconds())/1000, "tr-list-p99-ms")
	b.ReportMetric(float64(tr.showP99.Microseconds())/1000, "tr-show-p99-ms")
	logSideBySide(b, coordFig, tr)
}

// apiGet is one API request as the latency figures count it: sent, and
// its whole body read (not decoded: that is the client's cost).
func apiGet(b *testing.B, base, path string) {
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Header.Set("Authorization", "Bearer "+serveToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
	}
}

// saveProfiles writes, under FLOTILLA_BENCH_OUT, the idle daemon's CPU
// profile (10 s) and heap profile (go tool pprof) and its log so far.
func saveProfiles(b *testing.B, s *serveProc, out string) {
	b.Helper()
	if err := os.MkdirAll(out, 0o755); err != nil {
		b.Fatal(err)
	}
	base := strings.TrimSuffix(s.api, "/api/v1")
	for name, path := range map[string]string{"cpu.pprof": "/debug/pprof/profile?seconds=10", "heap.pprof": "/debug/pprof/heap", "goroutine.txt": "/debug/pprof/goroutine?debug=1"} {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+serveToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("%s: %d %v", path, resp.StatusCode, err)
		}
		os.WriteFile(filepath.Join(out, name), body, 0o644)
	}
	os.WriteFile(filepath.Join(out, "serve.log"), []byte(s.out.String()), 0o644)
	b.Logf("profiles and log in %s", out)
}

// startServeB builds coord and starts coord serve for a benchmark, with
// its state and data under dir.
func startServeB(b *testing.B, dir string, extra ...string) *serveProc {
	b.Helper()
	bin := filepath.Join(dir, "coord")
	if out, err := exec.Command("go", "build", "-o", bin, "flotilla/cmd/coord").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(serveToken), 0o600); err != nil {
		b.Fatal(err)
	}
	args := append([]string{"serve", "--state", filepath.Join(dir, "state"), "--data", filepath.Join(dir, "data"),
		"--http", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--api-token-file", tokenFile}, extra...)
	cmd := exec.Command(bin, noDHT(args)...)
	p := &coordProc{cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	b.Cleanup(func() { cmd.Process.Kill(); <-p.done })
	var m []string
	testenv.WaitFor(b, 30*time.Second, "coord serve's API address", func() bool {
		m = apiLine.FindStringSubmatch(p.out.String())
		return m != nil
	})
	return &serveProc{coordProc: p, api: m[1] + "/api/v1"}
}
