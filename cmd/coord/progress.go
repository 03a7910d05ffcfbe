package main

import (
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/vbauerster/cupwriter"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"flotilla/metainfo"
	"flotilla/swarm"
)

// maxDisplayWidth caps the live display's lines (the terminal's width, when
// it is narrower, caps them further).
const maxDisplayWidth = 80

// progress shows a download's status: a live display on a terminal,
// otherwise one log line every logEvery.
//
// The live display is drawn by mpb (github.com/vbauerster/mpb/v8), which
// redraws it in place from its own goroutine: the overall bar (name,
// percent, bytes, ETA) with a table header below it, one row per swarm
// worker (the local swarm and every node) once there is more than one, and
// a total row with the aggregate rates, peers and seeds. A row whose worker
// leaves stays, marked "gone"; a worker that comes back gets it again.
//
// While the display is live, anything else written to the terminal would
// be drawn over, so messages for stderr must go through progress's Write,
// which has mpb print them above the display.
//
// update and finish are called by one goroutine (runTransfer's, which
// reads the job's events in transferCmd.follow); Write may be called from
// any goroutine.
type progress struct {
	w        io.Writer
	mode     string // "bar", "log" or "none"
	name     string
	width    int // a cap on the live display's width, before the terminal's
	lastLog  time.Time
	logEvery time.Duration
	est      etaEstimator
	now      func() time.Time // time.Now; tests replace it

	// refresh, when set before the first update, replaces the live
	// display's timed redraws with one per value received (for tests).
	refresh <-chan any

	// mu orders Write with the start and the end of the live display.
	mu      sync.Mutex
	done    bool          // written under mu
	bars    *mpb.Progress // the live display; set under mu on the first update
	overall *mpb.Bar
	total   *mpb.Bar
	rows    map[string]*workerRow // by worker name
	snap    *atomic.Pointer[snapshot]
}

// snapshot is what the overall bar and the total row show: update
// publishes one per status, mpb's decorators read the newest.
type snapshot struct {
	st         swarm.Status
	eta        string
	totalLabel string
}

// workerRow is one swarm's row of the live display.
type workerRow struct {
	bar  *mpb.Bar
	name string
	cur  atomic.Pointer[workerFigures]
}

type workerFigures struct {
	ws   swarm.WorkerStatus
	gone bool // no longer in the status's workers
}

func newProgress(env *cmdEnv, mode string, logEvery time.Duration, t *metainfo.Torrent) *progress {
	p := &progress{w: env.stderr, name: t.Info.Name, logEvery: logEvery, width: maxDisplayWidth, now: time.Now}
	switch mode {
	case "bar", "log", "none":
		p.mode = mode
	default:
		p.mode = "log"
		if env.stderrIsTTY {
			p.mode = "bar"
		}
	}
	return p
}

// Write writes b to the progress's output: while the live display is up,
// above it (at its next redraw), otherwise straight through. Messages for
// stderr printed during a download must come through here.
func (p *progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bars != nil && !p.done {
		return p.bars.Write(b)
	}
	return p.w.Write(b)
}

func (p *progress) update(st swarm.Status) {
	if p.done {
		return
	}
	now := p.now()
	eta := etaText(p.est.observe(now, st))
	switch p.mode {
	case "bar":
		p.show(st, eta)
	case "log":
		if now.Sub(p.lastLog) < p.logEvery && !st.Complete {
			return
		}
		p.lastLog = now
		fmt.Fprintln(p.w, statusLine(st, eta))
	}
}

// finish ends the display. The live display stays on screen as last drawn
// (with the last update's figures); finish returns once mpb has drawn it,
// so whatever is printed next goes below it.
func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return
	}
	p.done = true
	if p.bars == nil {
		return
	}
	// An aborted bar is drawn one last time and kept (a completed one
	// already was); Wait returns once every bar has been.
	p.overall.Abort(false)
	for _, r := range p.rows {
		r.bar.Abort(false)
	}
	p.total.Abort(false)
	p.bars.Wait()
}

// show brings the live display up to date with st, starting it on the
// first call.
func (p *progress) show(st swarm.Status, eta string) {
	if p.bars == nil {
		p.start(st)
	}
	if len(st.Workers) > 1 || len(p.rows) > 0 {
		seen := make(map[string]bool, len(st.Workers))
		for _, ws := range st.Workers {
			seen[ws.Name] = true
			r := p.rows[ws.Name]
			if r == nil {
				r = p.addRow(ws.Name)
				if r == nil {
					continue
				}
			}
			r.cur.Store(&workerFigures{ws: ws})
		}
		for name, r := range p.rows {
			if !seen[name] {
				if f := r.cur.Load(); !f.gone {
					r.cur.Store(&workerFigures{ws: f.ws, gone: true})
				}
			}
		}
	}
	label := "total"
	if len(p.rows) == 0 && len(st.Workers) == 1 {
		label = st.Workers[0].Name
	}
	p.snap.Store(&snapshot{st: st, eta: eta, totalLabel: label})
	p.overall.SetCurrent(max(st.BytesDone, 0))
}

// start puts up the live display: the overall bar (with the table header
// below it) and the total row, which stays last.
func (p *progress) start(st swarm.Status) {
	p.snap = new(atomic.Pointer[snapshot])
	p.snap.Store(&snapshot{st: st, eta: "-", totalLabel: "total"})
	p.rows = make(map[string]*workerRow)
	width := p.width
	opts := []mpb.ContainerOption{
		// mpb's own terminal writer, reporting a width capped at ours
		// (minus one: a full-width line would wrap on some terminals).
		// It always moves the cursor back up to redraw, even on a
		// non-terminal, where "--progress bar" asked for the display.
		mpb.WithConsoleWriter(cappedConsole{cupwriter.New(p.w, true), width}),
		mpb.WithWidth(width - 1), // the width on a non-terminal
	}
	if p.refresh != nil {
		opts = append(opts, mpb.WithManualRefresh(p.refresh))
	} else {
		opts = append(opts, mpb.WithAutoRefresh())
	}
	bars := mpb.New(opts...)

	o := &overallLine{name: p.name, snap: p.snap}
	style := mpb.BarStyle().Lbound("[").Filler("=").Tip(">").Padding(" ").Rbound("]")
	p.overall = bars.New(max(st.Length, 0), style,
		mpb.PrependDecorators(decor.Any(o.nameText)),
		mpb.AppendDecorators(decor.Any(o.figuresText)),
		mpb.BarBtmExtender(lineFiller(func() string {
			return fmt.Sprintf(rowFormat, "swarm", "pieces", "down", "up", "peers")
		})))
	snap := p.snap
	p.total = bars.New(0, mpb.NopStyle(), mpb.BarFillerTrim(), mpb.BarPriority(math.MaxInt),
		mpb.PrependDecorators(decor.Any(func(decor.Statistics) string { return totalRow(snap.Load()) })))

	p.mu.Lock()
	p.bars = bars
	p.mu.Unlock()
}

// addRow adds a worker's row above the total row.
func (p *progress) addRow(name string) *workerRow {
	r := &workerRow{name: name}
	r.cur.Store(&workerFigures{ws: swarm.WorkerStatus{Name: name}})
	bar, err := p.bars.Add(0, mpb.NopStyle().Build(), mpb.BarFillerTrim(),
		mpb.PrependDecorators(decor.Any(func(decor.Statistics) string { return r.text() })))
	if err != nil {
		return nil // the display is over
	}
	r.bar = bar
	p.rows[name] = r
	return r
}

// rowFormat lays out the table: name, pieces, down rate, up rate, peers.
const rowFormat = "  %-16s %11s %12s %12s %6s"

func (r *workerRow) text() string {
	f := r.cur.Load()
	switch {
	case f.gone:
		return fmt.Sprintf(rowFormat, clip(r.name, 16), fmt.Sprint(f.ws.Delivered), "-", "-", "-") + "  gone"
	case f.ws.State == swarm.WorkerGone || f.ws.State == swarm.WorkerQuarantined:
		// Still listed by the sub-chief, no longer working for it.
		return fmt.Sprintf(rowFormat, clip(r.name, 16), fmt.Sprint(f.ws.Delivered), "-", "-", "-") + "  " + string(f.ws.State)
	}
	line := fmt.Sprintf(rowFormat, clip(r.name, 16), fmt.Sprint(f.ws.Delivered),
		rate(f.ws.DownRate), rate(f.ws.UpRate), fmt.Sprint(f.ws.Peers))
	if f.ws.State == swarm.WorkerBenched {
		line += "  benched"
	}
	return line
}

func totalRow(s *snapshot) string {
	st := s.st
	line := fmt.Sprintf(rowFormat, clip(s.totalLabel, 16), fmt.Sprintf("%d/%d", st.Written, st.Pieces),
		rate(st.DownRate), rate(st.UpRate), fmt.Sprint(st.Peers))
	if st.Seeds > 0 {
		line += fmt.Sprintf(" (%d seeds)", st.Seeds)
	}
	return line
}

// overallLine is the text around the overall bar. Its decorators are
// called by mpb one after the other for each frame: nameText picks the
// snapshot the frame shows and sizes the name to leave room for the
// figures, figuresText shows the same snapshot's figures.
type overallLine struct {
	name  string
	snap  *atomic.Pointer[snapshot]
	frame *snapshot // only mpb's drawing of the bar touches it
}

// minBarWidth is the least room the name leaves for the bar, brackets
// included.
const minBarWidth = 22

func (o *overallLine) nameText(s decor.Statistics) string {
	o.frame = o.snap.Load()
	right := utf8.RuneCountInString(figures(o.frame))
	return clip(o.name, max(s.AvailableWidth-right-minBarWidth-2, 8)) // a space each side of the bar
}

func (o *overallLine) figuresText(decor.Statistics) string { return figures(o.frame) }

func figures(s *snapshot) string {
	st := s.st
	return fmt.Sprintf("%5.1f%%  %s / %s  eta %s", min(max(percent(st), 0), 100),
		humanBytes(st.BytesDone), humanBytes(st.Length), s.eta)
}

// lineFiller is an extra line of a bar, cut to the display's width as mpb
// cuts the bar's own line.
func lineFiller(text func() string) mpb.BarFiller {
	return mpb.BarFillerFunc(func(w io.Writer, s decor.Statistics) error {
		line := text()
		if r := []rune(line); len(r) > s.AvailableWidth {
			line = string(r[:max(s.AvailableWidth-1, 0)]) + "…"
		}
		_, err := io.WriteString(w, line+"\n")
		return err
	})
}

// cappedConsole is mpb's terminal writer with the terminal's width capped
// at max-1.
type cappedConsole struct {
	*cupwriter.Writer
	max int
}

func (c cappedConsole) GetTermSize() (width, height int, err error) {
	width, height, err = c.Writer.GetTermSize()
	if width <= 0 { // not reported
		width = c.max
	}
	return min(width, c.max) - 1, height, err
}

// clip shortens s to n runes, keeping its start and end (node names often
// differ only at the end: "host@10.0.0.2:7946").
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	if n < 3 {
		return string(r[:max(n, 0)])
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

// statusLine is the one-line form of a status, for logs.
func statusLine(st swarm.Status, eta string) string {
	line := fmt.Sprintf("%5.1f%%  %s / %s  down %s/s  up %s/s  peers %d (%d seeds)  eta %s",
		percent(st), humanBytes(st.BytesDone), humanBytes(st.Length), humanBytes(int64(st.DownRate)),
		humanBytes(int64(st.UpRate)), st.Peers, st.Seeds, eta)
	if len(st.Workers) > 1 {
		for _, w := range st.Workers {
			if w.State != "" && w.State != swarm.WorkerActive {
				line += fmt.Sprintf("  [%s: %d pieces, %s]", w.Name, w.Delivered, w.State)
				continue
			}
			line += fmt.Sprintf("  [%s: %d pieces, %s/s, %d peers]", w.Name, w.Delivered, humanBytes(int64(w.DownRate)), w.Peers)
		}
	}
	return line
}
