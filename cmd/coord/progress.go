package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"flotilla/metainfo"
	"flotilla/swarm"
)

// maxDisplayWidth caps the live display's lines (the terminal's width, when
// it is narrower, caps them further).
const maxDisplayWidth = 80

// progress shows a download's status: a live display on a terminal,
// otherwise one log line every logEvery.
//
// The live display is a few lines, redrawn in place: the bar with the
// overall figures, then a table with one row per swarm (the local one and
// every node) giving its pieces, rates and peers. It sits below a blank
// line where the cursor rests between redraws, so that a message printed
// meanwhile lands on that line and stays above the next redraw instead of
// being drawn over.
type progress struct {
	w        io.Writer
	mode     string // "bar", "log" or "none"
	name     string
	width    int // of the live display's lines
	drawn    int // lines of the live display on screen below the cursor
	lastLog  time.Time
	logEvery time.Duration
	done     bool
}

func newProgress(env *cmdEnv, mode string, logEvery time.Duration, t *metainfo.Torrent) *progress {
	p := &progress{w: env.stderr, name: t.Info.Name, logEvery: logEvery, width: maxDisplayWidth}
	switch mode {
	case "bar", "log", "none":
		p.mode = mode
	default:
		p.mode = "log"
		if env.stderrIsTTY {
			p.mode = "bar"
		}
	}
	if f, ok := env.stderr.(*os.File); ok {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 20 && w < p.width {
			p.width = w
		}
	}
	return p
}

func (p *progress) update(st swarm.Status) {
	if p.done {
		return
	}
	switch p.mode {
	case "bar":
		p.draw(displayLines(p.name, st, p.width-1)) // a full-width line would wrap on some terminals
	case "log":
		now := time.Now()
		if now.Sub(p.lastLog) < p.logEvery && !st.Complete {
			return
		}
		p.lastLog = now
		fmt.Fprintln(p.w, statusLine(st))
	}
}

// draw replaces the live display with lines. The cursor starts and ends
// at the start of the blank line above the display.
func (p *progress) draw(lines []string) {
	var b strings.Builder
	b.WriteString("\x1b[J") // erase the old display (and whatever is below it)
	for _, l := range lines {
		b.WriteString("\n")
		b.WriteString(l)
	}
	fmt.Fprintf(&b, "\r\x1b[%dA", len(lines))
	io.WriteString(p.w, b.String())
	p.drawn = len(lines)
}

func (p *progress) finish() {
	if p.done {
		return
	}
	p.done = true
	if p.drawn > 0 {
		// Leave the last display on screen and go below it.
		fmt.Fprintf(p.w, "\x1b[%dB\n", p.drawn)
	}
}

// displayLines is the live display of st: lines of at most width runes.
func displayLines(name string, st swarm.Status, width int) []string {
	pct := min(max(percent(st), 0), 100)
	right := fmt.Sprintf(" %5.1f%%  %s / %s  eta %s", pct, humanBytes(st.BytesDone), humanBytes(st.Length), eta(st))
	const barLen = 20
	full := int(pct / 100 * barLen)
	bar := strings.Repeat("=", full)
	if full < barLen {
		bar += ">" + strings.Repeat(" ", barLen-full-1)
	}
	nameLen := max(width-utf8.RuneCountInString(right)-barLen-3, 8)
	lines := []string{fmt.Sprintf("%s [%s]%s", clip(name, nameLen), bar, right)}

	const row = "  %-16s %11s %12s %12s %6s"
	lines = append(lines, fmt.Sprintf(row, "swarm", "pieces", "down", "up", "peers"))
	if len(st.Workers) > 1 {
		for _, w := range st.Workers {
			lines = append(lines, fmt.Sprintf(row, clip(w.Name, 16), fmt.Sprint(w.Delivered),
				rate(w.DownRate), rate(w.UpRate), fmt.Sprint(w.Peers)))
		}
	}
	total := "total"
	if len(st.Workers) == 1 {
		total = st.Workers[0].Name
	}
	last := fmt.Sprintf(row, clip(total, 16), fmt.Sprintf("%d/%d", st.Written, st.Pieces),
		rate(st.DownRate), rate(st.UpRate), fmt.Sprint(st.Peers))
	if st.Seeds > 0 {
		last += fmt.Sprintf(" (%d seeds)", st.Seeds)
	}
	lines = append(lines, last)
	for i, l := range lines {
		lines[i] = clip(l, width)
	}
	return lines
}

// clip shortens s to n runes, keeping its start and end (node names often
// differ only at the end: "host@10.0.0.2:7946").
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	if n < 3 {
		return string(r[:n])
	}
	head := (n - 1) / 2
	return string(r[:head]) + "…" + string(r[len(r)-(n-1-head):])
}

func rate(bps float64) string { return humanBytes(int64(bps)) + "/s" }

func percent(st swarm.Status) float64 {
	if st.Length <= 0 {
		return 100
	}
	return 100 * float64(st.BytesDone) / float64(st.Length)
}

func eta(st swarm.Status) string {
	if st.DownRate <= 0 || st.BytesDone >= st.Length {
		return "-"
	}
	return (time.Duration(float64(st.Length-st.BytesDone)/st.DownRate) * time.Second).Round(time.Second).String()
}

// statusLine is the one-line form of a status, for logs.
func statusLine(st swarm.Status) string {
	line := fmt.Sprintf("%5.1f%%  %s / %s  down %s/s  up %s/s  peers %d (%d seeds)  eta %s",
		percent(st), humanBytes(st.BytesDone), humanBytes(st.Length), humanBytes(int64(st.DownRate)),
		humanBytes(int64(st.UpRate)), st.Peers, st.Seeds, eta(st))
	if len(st.Workers) > 1 {
		for _, w := range st.Workers {
			line += fmt.Sprintf("  [%s: %d pieces, %s/s, %d peers]", w.Name, w.Delivered, humanBytes(int64(w.DownRate)), w.Peers)
		}
	}
	return line
}
