package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// summary is one client's medians over its successful runs.
type summary struct {
	Client       string
	Runs, OK     int
	Skip         string
	Wall, CPU    time.Duration
	MBps, RSSMiB float64
	FirstReq     []time.Duration // coord: each successful run's first request
	React        []time.Duration // coord: of it, the time after the first peer's handshake
	Failures     []string
}

func durations(ds []time.Duration) []int64 {
	out := make([]int64, len(ds))
	for i, d := range ds {
		out[i] = int64(d)
	}
	return out
}

func median[T int64 | float64](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func summarize(c *client, rs []result) summary {
	s := summary{Client: c.Name, Skip: c.Skip}
	var wall, cpu []int64
	var mbps, rss []float64
	for _, r := range rs {
		if r.Client != c.Name {
			continue
		}
		s.Runs++
		if !r.OK {
			s.Failures = append(s.Failures, fmt.Sprintf("run %d: %s", r.Run, r.Fail))
			continue
		}
		s.OK++
		wall = append(wall, int64(r.Wall))
		cpu = append(cpu, int64(r.CPU))
		mbps = append(mbps, r.MBps)
		rss = append(rss, r.RSSMiB)
		if r.FirstReq > 0 {
			s.FirstReq = append(s.FirstReq, r.FirstReq)
		}
		if r.React >= 0 && r.FirstReq > 0 {
			s.React = append(s.React, r.React)
		}
	}
	s.Wall, s.CPU = time.Duration(median(wall)), time.Duration(median(cpu))
	s.MBps, s.RSSMiB = median(mbps), median(rss)
	return s
}

// printTable writes the results table. Ratios are client ÷ coord, for
// coord's successful runs only.
func printTable(w io.Writer, ss []summary) {
	var ref *summary
	for i := range ss {
		if ss[i].Client == "coord" && ss[i].OK > 0 {
			ref = &ss[i]
		}
	}
	ratio := func(x, y float64) string {
		if ref == nil || y == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", x/y)
	}
	fmt.Fprintf(w, "%-18s %7s %8s %8s %8s %8s | %8s %8s %8s\n",
		"client", "ok/runs", "wall s", "MB/s", "CPU s", "RSS MiB", "MB/s ×c", "CPU ×c", "RSS ×c")
	fmt.Fprintln(w, strings.Repeat("-", 18+8+9*4+2+9*3))
	for _, s := range ss {
		if s.Skip != "" {
			fmt.Fprintf(w, "%-18s skipped: %s\n", s.Client, s.Skip)
			continue
		}
		if s.OK == 0 {
			fmt.Fprintf(w, "%-18s %7s %8s %8s %8s %8s | %8s %8s %8s\n", s.Client,
				fmt.Sprintf("%d/%d", s.OK, s.Runs), "FAIL", "FAIL", "-", "-", "-", "-", "-")
			continue
		}
		var rm, rc, rr string = "-", "-", "-"
		if ref != nil {
			rm = ratio(s.MBps, ref.MBps)
			rc = ratio(s.CPU.Seconds(), ref.CPU.Seconds())
			rr = ratio(s.RSSMiB, ref.RSSMiB)
		}
		fmt.Fprintf(w, "%-18s %7s %8.2f %8.1f %8.2f %8.1f | %8s %8s %8s\n", s.Client,
			fmt.Sprintf("%d/%d", s.OK, s.Runs), s.Wall.Seconds(), s.MBps, s.CPU.Seconds(), s.RSSMiB, rm, rc, rr)
	}
	fmt.Fprintln(w, "medians over successful runs; MB = 10^6 bytes; CPU = user+sys of the client process;")
	fmt.Fprintln(w, "RSS = its peak resident set; ×c = client ÷ coord (MB/s ×c < 1 means slower than coord)")
	for _, s := range ss {
		if len(s.FirstReq) > 0 {
			ms := make([]string, len(s.FirstReq))
			for i, d := range s.FirstReq {
				ms[i] = d.Round(time.Millisecond).String()
			}
			fmt.Fprintf(w, "%s: first block requested after %s from its start (runs: %s)", s.Client,
				time.Duration(median(durations(s.FirstReq))).Round(time.Millisecond), strings.Join(ms, ", "))
			if len(s.React) > 0 {
				fmt.Fprintf(w, ", %s after the first peer's handshake reply", time.Duration(median(durations(s.React))).Round(time.Microsecond))
			}
			fmt.Fprintln(w)
		}
	}
	for _, s := range ss {
		for _, f := range s.Failures {
			fmt.Fprintf(w, "FAIL %s %s\n", s.Client, f)
		}
	}
}

// printMachine writes what the figures depend on.
func printMachine(w io.Writer, cs []*client, load0 string) {
	var u syscall.Utsname
	kernel := "?"
	if syscall.Uname(&u) == nil {
		kernel = cstr(u.Release[:])
	}
	fmt.Fprintf(w, "machine: %d CPUs (%s), %s RAM, Linux %s, %s\n",
		runtime.NumCPU(), procField("/proc/cpuinfo", "model name"), memTotal(), kernel, runtime.Version())
	fmt.Fprintf(w, "load average (1, 5, 15 min): %s at start, %s at end (other work skews the figures)\n", load0, loadAvg())
	for _, c := range cs {
		v := c.Version
		if c.Skip != "" {
			v = "-"
		}
		fmt.Fprintf(w, "  %-18s %s\n", c.Name, v)
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", "opentracker").Output(); err == nil {
		fmt.Fprintf(w, "  %-18s %s (seeders: aria2c)\n", "opentracker", strings.TrimSpace(string(out)))
	}
}

func cstr(b []int8) string {
	var s strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		s.WriteByte(byte(c))
	}
	return s.String()
}

func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return "?"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func memTotal() string {
	v := procField("/proc/meminfo", "MemTotal")
	var kib int64
	if _, err := fmt.Sscanf(v, "%d kB", &kib); err != nil {
		return "?"
	}
	return fmt.Sprintf("%.1f GiB", float64(kib)/(1<<20))
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
