package main

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"

	"flotilla/internal/lab"
	"flotilla/metainfo"
	"flotilla/swarm"
)

func torrentNamed(name string) *metainfo.Torrent {
	return &metainfo.Torrent{Info: &metainfo.Info{Name: name}}
}

// clusterStatus is a download spread over the local swarm and three nodes,
// one with a long default name.
func clusterStatus() swarm.Status {
	return swarm.Status{
		Pieces: 2711, Written: 1433, BytesDone: 1433 << 20, Length: 2711 << 20,
		DownRate: 23.5 * (1 << 20), UpRate: 1.5 * (1 << 20), Peers: 103, Seeds: 3,
		Workers: []swarm.WorkerStatus{
			{Name: "local", Delivered: 523, DownRate: 12.3 * (1 << 20), UpRate: 1 << 20, Peers: 35},
			{Name: "node1", Delivered: 610, DownRate: 9.8 * (1 << 20), UpRate: 512 << 10, Peers: 40},
			{Name: "node2", Delivered: 300, DownRate: 1.4 * (1 << 20), Peers: 28},
			{Name: "swarmnode-7f9c8d6b5-x2x4q@10.244.1.17:7946", Delivered: 0, Peers: 0},
		},
	}
}

// screen is a terminal that knows the few controls mpb's redraws use: \n
// (with the usual output post-processing, also a carriage return), \r,
// ESC[nA and ESC[J. It is written from mpb's goroutine and the test's, and
// tells frames on each write.
type screen struct {
	mu       sync.Mutex
	rows     [][]rune
	row, col int
	writes   chan struct{}
}

func newScreen() *screen { return &screen{writes: make(chan struct{}, 1)} }

func (s *screen) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() {
		select {
		case s.writes <- struct{}{}:
		default:
		}
	}()
	text := string(b)
	for len(text) > 0 {
		if strings.HasPrefix(text, "\x1b[") {
			end := strings.IndexAny(text, "ABJ")
			if end < 0 {
				return 0, fmt.Errorf("unknown control in %q", text)
			}
			n := 1
			if end > 2 {
				var err error
				if n, err = strconv.Atoi(text[2:end]); err != nil {
					return 0, fmt.Errorf("bad control %q", text[:end+1])
				}
			}
			switch text[end] {
			case 'A':
				s.row = max(s.row-n, 0)
			case 'B':
				s.row += n
			case 'J':
				s.grow()
				s.rows[s.row] = s.rows[s.row][:min(s.col, len(s.rows[s.row]))]
				s.rows = s.rows[:s.row+1]
			}
			text = text[end+1:]
			continue
		}
		r, size := utf8.DecodeRuneInString(text)
		text = text[size:]
		switch r {
		case '\n':
			s.row, s.col = s.row+1, 0
		case '\r':
			s.col = 0
		default:
			s.grow()
			for len(s.rows[s.row]) <= s.col {
				s.rows[s.row] = append(s.rows[s.row], ' ')
			}
			s.rows[s.row][s.col] = r
			s.col++
		}
	}
	return len(b), nil
}

func (s *screen) grow() {
	for len(s.rows) <= s.row {
		s.rows = append(s.rows, nil)
	}
}

// lines is the screen's text, without the empty line the cursor rests on.
func (s *screen) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var lines []string
	for _, r := range s.rows {
		lines = append(lines, strings.TrimRight(string(r), " "))
	}
	if n := len(lines); n > 0 && lines[n-1] == "" {
		lines = lines[:n-1]
	}
	return lines
}

// liveBar is a progress in bar mode on a screen, redrawn only when the
// test asks.
type liveBar struct {
	p       *progress
	scr     *screen
	refresh chan any
}

func newTestBar(t *testing.T, name string, width int) *liveBar {
	t.Helper()
	scr := newScreen()
	p := newProgress(&cmdEnv{stderr: scr}, "bar", time.Second, torrentNamed(name))
	refresh := make(chan any)
	p.refresh, p.width = refresh, width
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs last
	t.Cleanup(p.finish)                                // ends mpb's goroutines if the test stopped early
	return &liveBar{p: p, scr: scr, refresh: refresh}
}

// draw has mpb redraw the display and waits until it has, returning the
// screen.
func (b *liveBar) draw(t *testing.T) []string {
	t.Helper()
	select {
	case <-b.scr.writes: // an earlier write's
	default:
	}
	select {
	case b.refresh <- struct{}{}:
	case <-time.After(5 * time.Second):
		t.Fatal("mpb did not take a refresh")
	}
	select {
	case <-b.scr.writes:
	case <-time.After(5 * time.Second):
		t.Fatal("mpb did not redraw")
	}
	return b.scr.lines()
}

// rowFields splits a table row into name, pieces, down rate, up rate
// and peers.
func rowFields(t *testing.T, row string) []string {
	t.Helper()
	f := strings.Fields(row)
	if len(f) < 7 {
		t.Fatalf("row %q: want at least 7 fields", row)
	}
	return []string{f[0], f[1], f[2] + " " + f[3], f[4] + " " + f[5], f[6]}
}

func checkWidth(t *testing.T, lines []string, width int) {
	t.Helper()
	for _, l := range lines {
		if n := utf8.RuneCountInString(l); n > width {
			t.Errorf("line of %d columns (limit %d): %q", n, width, l)
		}
	}
}

func TestBarShowsEverySwarm(t *testing.T) {
	b := newTestBar(t, "ubuntu-24.04.1-desktop-amd64-with-a-very-long-name.iso", maxDisplayWidth)
	st := clusterStatus()
	primedUpdate(b.p, st)
	lines := b.draw(t)
	checkWidth(t, lines, maxDisplayWidth-1)
	if len(lines) != 2+len(st.Workers)+1 {
		t.Fatalf("want the bar, a header, a row per swarm and a total; got\n%s", strings.Join(lines, "\n"))
	}
	if l := lines[0]; !strings.HasPrefix(l, "ubuntu") || !strings.Contains(l, "…") ||
		!strings.Contains(l, "[==========>") || !strings.HasSuffix(l, "52.9%  1.4 GiB / 2.6 GiB  eta 55s") {
		t.Errorf("bar line: %q", l)
	}
	if f := strings.Fields(lines[1]); strings.Join(f, " ") != "swarm pieces down up peers" {
		t.Errorf("header: %q", lines[1])
	}
	for i, w := range st.Workers {
		f := rowFields(t, lines[2+i])
		if !strings.HasPrefix(w.Name, strings.SplitN(f[0], "…", 2)[0]) {
			t.Errorf("row %q does not name %s", lines[2+i], w.Name)
		}
		if f[1] != strconv.Itoa(w.Delivered) || f[2] != rate(w.DownRate) || f[3] != rate(w.UpRate) || f[4] != strconv.Itoa(w.Peers) {
			t.Errorf("row for %s: %q", w.Name, lines[2+i])
		}
	}
	if !strings.Contains(lines[5], "…") || !strings.HasSuffix(strings.Fields(lines[5])[0], ":7946") {
		t.Errorf("a long name keeps its start and end: %q", lines[5])
	}
	total := lines[len(lines)-1]
	if f := rowFields(t, total); f[0] != "total" || f[1] != "1433/2711" || f[2] != "23.5 MiB/s" ||
		f[3] != "1.5 MiB/s" || f[4] != "103" || !strings.HasSuffix(total, "(3 seeds)") {
		t.Errorf("total row: %q", total)
	}
}

func TestBarNarrowTerminal(t *testing.T) {
	b := newTestBar(t, "ubuntu-24.04.1-desktop-amd64.iso", 51)
	primedUpdate(b.p, clusterStatus())
	lines := b.draw(t)
	checkWidth(t, lines, 50)
	if len(lines) != 7 || !strings.Contains(lines[0], "52.9%") || !strings.Contains(lines[0], "[") {
		t.Errorf("display at 50 columns:\n%s", strings.Join(lines, "\n"))
	}
}

func TestBarFollowsWorkers(t *testing.T) {
	b := newTestBar(t, "big.iso", maxDisplayWidth)
	fmt.Fprintln(b.p, "coord: starting") // before the display: straight through

	// Alone, the total row is the local swarm's.
	st := swarm.Status{Pieces: 10, Written: 4, BytesDone: 4 << 16, Length: 10 << 16, DownRate: 1 << 16, Peers: 2,
		Workers: []swarm.WorkerStatus{{Name: "local", Delivered: 4, DownRate: 1 << 16, Peers: 2}}}
	primedUpdate(b.p, st)
	lines := b.draw(t)
	if len(lines) != 4 || lines[0] != "coord: starting" {
		t.Fatalf("alone: want the message, the bar, a header and the local row; got\n%s", strings.Join(lines, "\n"))
	}
	if !strings.HasPrefix(lines[1], "big.iso [") || !strings.HasSuffix(lines[1], " 40.0%  256.0 KiB / 640.0 KiB  eta 6s") {
		t.Errorf("bar line: %q", lines[1])
	}
	if f := rowFields(t, lines[3]); f[0] != "local" || f[1] != "4/10" || f[4] != "2" {
		t.Errorf("local row: %q", lines[3])
	}

	// A node joins: a row for each swarm above the total.
	st.Workers = append(st.Workers, swarm.WorkerStatus{Name: "node1", Delivered: 1, DownRate: 1 << 20, Peers: 7})
	st.Written, st.BytesDone, st.Peers = 5, 5<<16, 9
	primedUpdate(b.p, st)
	lines = b.draw(t)
	if len(lines) != 6 {
		t.Fatalf("with a node: want the message, the bar, a header, 2 rows and a total; got\n%s", strings.Join(lines, "\n"))
	}
	if f := rowFields(t, lines[3]); f[0] != "local" || f[1] != "4" {
		t.Errorf("local row: %q", lines[3])
	}
	if f := rowFields(t, lines[4]); f[0] != "node1" || f[1] != "1" || f[2] != "1.0 MiB/s" || f[4] != "7" {
		t.Errorf("node1's row: %q", lines[4])
	}
	if f := rowFields(t, lines[5]); f[0] != "total" || f[1] != "5/10" || f[4] != "9" {
		t.Errorf("total row: %q", lines[5])
	}

	// A message printed meanwhile goes above the display, not over it.
	fmt.Fprintln(b.p, "cluster: swarm node node1 quarantined")
	// The node leaves: its row stays, marked.
	st.Workers = st.Workers[:1]
	primedUpdate(b.p, st)
	lines = b.draw(t)
	if len(lines) != 7 || lines[1] != "cluster: swarm node node1 quarantined" || !strings.HasPrefix(lines[2], "big.iso [") {
		t.Fatalf("after a message:\n%s", strings.Join(lines, "\n"))
	}
	if f := strings.Fields(lines[5]); f[0] != "node1" || f[1] != "1" || f[len(f)-1] != "gone" {
		t.Errorf("a node that left: %q", lines[5])
	}

	// The end: finish returns with the last figures drawn, and what is
	// printed next goes below them.
	st.Written, st.BytesDone, st.Complete = st.Pieces, st.Length, true
	st.Workers[0].Delivered = 9
	primedUpdate(b.p, st)
	b.p.finish()
	fmt.Fprintln(b.p, "downloaded big.iso") // after the display: straight through
	lines = b.scr.lines()
	if len(lines) != 8 || lines[7] != "downloaded big.iso" {
		t.Fatalf("after finish:\n%s", strings.Join(lines, "\n"))
	}
	if !strings.HasSuffix(lines[2], "100.0%  640.0 KiB / 640.0 KiB  eta -") || !strings.Contains(lines[2], "[=====") {
		t.Errorf("final bar line: %q", lines[2])
	}
	if f := rowFields(t, lines[4]); f[0] != "local" || f[1] != "9" {
		t.Errorf("final local row: %q", lines[4])
	}
	if f := rowFields(t, lines[6]); f[0] != "total" || f[1] != "10/10" {
		t.Errorf("final total row: %q", lines[6])
	}
	checkWidth(t, lines, maxDisplayWidth-1)
}

func TestBarInterrupted(t *testing.T) {
	b := newTestBar(t, "big.iso", maxDisplayWidth)
	primedUpdate(b.p, clusterStatus())
	b.p.finish()                      // no redraw asked for: finish draws the last figures itself
	primedUpdate(b.p, swarm.Status{}) // ignored
	lines := b.scr.lines()
	if len(lines) != 7 || !strings.Contains(lines[0], "52.9%") || !strings.Contains(lines[6], "1433/2711") {
		t.Fatalf("after finish:\n%s", strings.Join(lines, "\n"))
	}
}

func TestNoDisplay(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&cmdEnv{stderr: &buf}, "none", time.Second, torrentNamed("big.iso"))
	p.update(clusterStatus())
	fmt.Fprintln(p, "cluster: a message")
	p.finish()
	if buf.String() != "cluster: a message\n" {
		t.Errorf("none: %q", buf.String())
	}
}

func TestLogLines(t *testing.T) {
	var buf bytes.Buffer
	env := &cmdEnv{stderr: &buf}
	p := newProgress(env, "log", time.Hour, torrentNamed("big.iso"))
	st := clusterStatus()
	p.update(st)
	p.update(st) // within the interval: not logged
	st.Complete = true
	p.update(st) // completion is always logged
	p.finish()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 log lines, got %q", buf.String())
	}
	l := lines[0]
	if strings.Contains(l, "\x1b") {
		t.Errorf("a log line has terminal controls: %q", l)
	}
	for _, want := range []string{" 52.9%", "down 23.5 MiB/s", "peers 103 (3 seeds)",
		"[local: 523 pieces, 12.3 MiB/s, 35 peers]", "[node1: 610 pieces, 9.8 MiB/s, 40 peers]",
		"[node2: 300 pieces, 1.4 MiB/s, 28 peers]"} {
		if !strings.Contains(l, want) {
			t.Errorf("log line lacks %q:\n%s", want, l)
		}
	}
	// Alone, the line has no per-swarm part.
	st.Workers = st.Workers[:1]
	if l := statusLine(st, "-"); strings.Contains(l, "[") {
		t.Errorf("one swarm: %q", l)
	}
}

// The sub-chief's verdict on a worker shows in both modes: a quarantined or
// gone node's row has no rates, a benched one is marked.
func TestWorkerStates(t *testing.T) {
	st := clusterStatus()
	st.Workers[1].State = swarm.WorkerQuarantined
	st.Workers[2].State = swarm.WorkerBenched
	b := newTestBar(t, "big.iso", maxDisplayWidth)
	primedUpdate(b.p, st)
	lines := b.draw(t)
	if l := lines[3]; !strings.HasSuffix(l, "quarantined") || strings.Contains(l, "/s") {
		t.Errorf("quarantined row: %q", l)
	}
	if l := lines[4]; !strings.HasSuffix(l, "benched") || !strings.Contains(l, rate(st.Workers[2].DownRate)) {
		t.Errorf("benched row: %q", l)
	}
	l := statusLine(st, "-")
	if !strings.Contains(l, "[node1: 610 pieces, quarantined]") || !strings.Contains(l, "[node2: 300 pieces, benched]") {
		t.Errorf("log line: %q", l)
	}
}

func TestETAText(t *testing.T) {
	for _, c := range []struct {
		left time.Duration
		ok   bool
		want string
	}{
		{400 * time.Millisecond, true, "1s"}, // not "0s"
		{1500 * time.Millisecond, true, "2s"},
		{54 * time.Second, true, "54s"}, // exact
		{time.Hour + 500*time.Millisecond, true, "1h0m1s"},
		{0, true, "-"},            // done
		{time.Second, false, "-"}, // no estimate yet
	} {
		if got := etaText(c.left, c.ok); got != c.want {
			t.Errorf("etaText(%v, %v) = %s, want %s", c.left, c.ok, got, c.want)
		}
	}
}

// TestETAFromFirstByte replays a download as the issue saw it: 3 s of
// trackers and handshakes with nothing received, half a second of slow
// start, then 10 MiB/s until 130 MiB are done (about 16 s in all). The
// status's DownRate is smoothed as the swarm smooths it (an exponential
// average, time constant 2 s, seeded by its first sample). From a second
// after the first byte on, the ETA shown must be within a factor of two of
// the time really left. Before the fix the ETA came from DownRate, seeded
// by slow start: 34 minutes at first, still 2.5 times too long a second
// later.
func TestETAFromFirstByte(t *testing.T) {
	const (
		length = 130 << 20
		fast   = 10 << 20 // bytes/s
		slow   = 64 << 10 // bytes/s during slow start
		tick   = 250 * time.Millisecond
	)
	firstByte := 3 * time.Second
	speedAt := func(at time.Duration) float64 {
		switch {
		case at < firstByte:
			return 0
		case at < firstByte+500*time.Millisecond:
			return slow
		}
		return fast
	}
	var est etaEstimator
	start := time.Unix(1_000_000, 0)
	var recv float64
	var rate float64 // the swarm's smoothed DownRate
	// Simulate first to know when it ends, then replay checking the ETA.
	type point struct {
		at       time.Duration
		st       swarm.Status
		trueLeft time.Duration
	}
	var points []point
	for at := tick; recv < length; at += tick {
		got := speedAt(at-tick) * tick.Seconds()
		recv = min(recv+got, length)
		sample := got / tick.Seconds()
		if rate == 0 {
			rate = sample
		} else {
			rate += (1 - math.Exp(-tick.Seconds()/2)) * (sample - rate)
		}
		points = append(points, point{at: at, st: swarm.Status{Length: length, BytesDone: int64(recv), Downloaded: int64(recv), DownRate: rate}})
	}
	end := points[len(points)-1].at
	for _, p := range points {
		left, ok := est.observe(start.Add(p.at), p.st)
		if p.at < firstByte+tick+etaMinSpan || p.st.BytesDone >= length {
			continue
		}
		trueLeft := end - p.at
		if !ok || left > 2*trueLeft || left < trueLeft/2 {
			t.Errorf("at %v (%.0f MiB of 130): eta %v (ok %v), but %v are left", p.at, float64(p.st.BytesDone)/(1<<20), left, ok, trueLeft)
		}
	}
	if _, ok := new(etaEstimator).observe(start, swarm.Status{Length: length}); ok {
		t.Error("an estimate before any byte arrived")
	}
}

// primedUpdate has p show st as if payload had been arriving at
// st.DownRate for the last 10 s, so that the ETA shown is
// (Length-BytesDone)/DownRate.
func primedUpdate(p *progress, st swarm.Status) {
	now := time.Unix(1_000_000, 0)
	p.now = func() time.Time { return now }
	p.est.samples = []etaSample{{at: now.Add(-10 * time.Second), recv: st.Downloaded - int64(st.DownRate*10)}}
	p.update(st)
}

// TestCompletionSummary: with several swarms the summary gives each
// one's pieces and the end game's cost, in the form the benchmarks parse
// (internal/lab).
func TestCompletionSummary(t *testing.T) {
	st := clusterStatus()
	st.EndGame = swarm.EndGame{Duplicated: 3, DuplicatedBytes: 3 << 20, Cancelled: 2, Twice: 1}
	var b bytes.Buffer
	printWorkers(&b, st)
	log := "downloaded x\n" + b.String()
	c, err := lab.Contributions(log)
	if err != nil || len(c) != len(st.Workers) {
		t.Fatalf("Contributions = %+v, %v of\n%s", c, err, log)
	}
	eg, err := lab.EndGameOf(log)
	if err != nil || eg != (lab.EndGame{Duplicated: 3, DuplicatedBytes: 3 << 20, Cancelled: 2, Twice: 1}) {
		t.Fatalf("EndGameOf = %+v, %v of\n%s", eg, err, log)
	}
	if !strings.Contains(log, "0.11% of the size") {
		t.Fatalf("summary does not give the share of the size:\n%s", log)
	}
}
