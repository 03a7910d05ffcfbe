package main

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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

func TestDisplayShowsEverySwarm(t *testing.T) {
	st := clusterStatus()
	lines := displayLines("ubuntu-24.04.1-desktop-amd64-with-a-very-long-name.iso", st, maxDisplayWidth-1)
	for _, l := range lines {
		if n := utf8.RuneCountInString(l); n > maxDisplayWidth-1 {
			t.Errorf("line of %d columns (limit %d): %q", n, maxDisplayWidth-1, l)
		}
	}
	if len(lines) != 2+len(st.Workers)+1 {
		t.Fatalf("want the bar, a header, a row per swarm and a total; got\n%s", strings.Join(lines, "\n"))
	}
	if !strings.Contains(lines[0], "52.9%") || !strings.Contains(lines[0], "ubuntu") {
		t.Errorf("bar line: %q", lines[0])
	}
	for i, w := range st.Workers {
		f := strings.Fields(lines[2+i])
		if len(f) != 7 { // name, pieces, rate (2 fields), rate (2), peers
			t.Fatalf("row %q: want 7 fields", lines[2+i])
		}
		if !strings.HasPrefix(w.Name, strings.TrimSuffix(strings.SplitN(f[0], "…", 2)[0], "…")) {
			t.Errorf("row %q does not name %s", lines[2+i], w.Name)
		}
		if f[1] != strconv.Itoa(w.Delivered) || f[2]+" "+f[3] != rate(w.DownRate) ||
			f[4]+" "+f[5] != rate(w.UpRate) || f[6] != strconv.Itoa(w.Peers) {
			t.Errorf("row for %s: %q", w.Name, lines[2+i])
		}
	}
	if !strings.Contains(lines[3], "9.8 MiB/s") || !strings.Contains(lines[3], "512.0 KiB/s") {
		t.Errorf("node1's rates: %q", lines[3])
	}
	if !strings.Contains(lines[5], "…") || !strings.HasSuffix(strings.Fields(lines[5])[0], ":7946") {
		t.Errorf("a long name keeps its start and end: %q", lines[5])
	}
	total := lines[len(lines)-1]
	for _, want := range []string{"total", "1433/2711", "23.5 MiB/s", "103", "(3 seeds)"} {
		if !strings.Contains(total, want) {
			t.Errorf("total row %q lacks %q", total, want)
		}
	}
}

func TestDisplayOneSwarm(t *testing.T) {
	st := swarm.Status{Pieces: 10, Written: 4, BytesDone: 4 << 16, Length: 10 << 16, DownRate: 1 << 16, Peers: 2,
		Workers: []swarm.WorkerStatus{{Name: "local", Delivered: 4, DownRate: 1 << 16, Peers: 2}}}
	lines := displayLines("t.iso", st, 79)
	if len(lines) != 3 {
		t.Fatalf("alone: want the bar, a header and the local row; got\n%s", strings.Join(lines, "\n"))
	}
	if f := strings.Fields(lines[2]); f[0] != "local" || f[1] != "4/10" || f[6] != "2" {
		t.Errorf("local row: %q", lines[2])
	}
	if !strings.Contains(lines[0], "[========>           ]") || !strings.Contains(lines[0], "eta 6s") {
		t.Errorf("bar line: %q", lines[0])
	}
	// A narrow terminal clips every line.
	for _, l := range displayLines("t.iso", clusterStatus(), 50) {
		if utf8.RuneCountInString(l) > 50 {
			t.Errorf("line over 50 columns: %q", l)
		}
	}
}

// screen is a terminal that knows the few controls the display uses:
// \n (with the usual output post-processing, also a carriage return),
// \r, ESC[J, ESC[nA and ESC[nB.
type screen struct {
	rows     [][]rune
	row, col int
}

func (s *screen) Write(b []byte) (int, error) {
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

func (s *screen) String() string {
	var lines []string
	for _, r := range s.rows {
		lines = append(lines, strings.TrimRight(string(r), " "))
	}
	return strings.Join(lines, "\n")
}

func TestBarRedrawsInPlace(t *testing.T) {
	scr := &screen{}
	env := &cmdEnv{stderr: scr}
	p := newProgress(env, "bar", time.Second, torrentNamed("big.iso"))
	fmt.Fprintln(scr, "coord: starting")

	st := clusterStatus()
	p.update(st)
	first := scr.String()
	// A node leaves: the display gets shorter and must not leave its old
	// last rows behind.
	st.Workers = st.Workers[:2]
	st.Written, st.BytesDone = 1500, 1500<<20
	p.update(st)
	want := "coord: starting\n\n" + strings.Join(displayLines("big.iso", st, maxDisplayWidth-1), "\n")
	if got := scr.String(); got != want {
		t.Fatalf("after two updates the screen is\n%s\nwant\n%s\n(first frame:\n%s)", got, want, first)
	}
	// A message printed between redraws stays above the display.
	fmt.Fprintln(scr, "cluster: swarm node node2 quarantined")
	st.Written, st.BytesDone = st.Pieces, st.Length
	p.update(st)
	p.finish()
	fmt.Fprintln(scr, "downloaded big.iso")
	want = "coord: starting\ncluster: swarm node node2 quarantined\n\n" +
		strings.Join(displayLines("big.iso", st, maxDisplayWidth-1), "\n") + "\ndownloaded big.iso"
	if got := scr.String(); got != want {
		t.Fatalf("after a message, a last update and finish the screen is\n%s\nwant\n%s", got, want)
	}
	if !strings.Contains(want, "100.0%") || !strings.Contains(want, "node1") {
		t.Fatalf("final display:\n%s", want)
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
	if l := statusLine(st); strings.Contains(l, "[") {
		t.Errorf("one swarm: %q", l)
	}
}
