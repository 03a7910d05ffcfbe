package main

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"

	"flotilla/metainfo"
	"flotilla/swarm"
)

// progress shows a download's status: a live bar on a terminal, otherwise
// one log line every logEvery.
type progress struct {
	w        io.Writer
	mode     string // "bar", "log" or "none"
	bar      *progressbar.ProgressBar
	length   int64
	lastLog  time.Time
	logEvery time.Duration
	done     bool
}

func newProgress(env *cmdEnv, mode string, logEvery time.Duration, t *metainfo.Torrent) *progress {
	p := &progress{w: env.stderr, length: t.Info.Length, logEvery: logEvery}
	switch mode {
	case "bar", "log", "none":
		p.mode = mode
	default:
		p.mode = "log"
		if env.stderrIsTTY {
			p.mode = "bar"
		}
	}
	if p.mode == "bar" {
		p.bar = progressbar.NewOptions64(t.Info.Length,
			progressbar.OptionSetWriter(env.stderr),
			progressbar.OptionSetDescription(t.Info.Name),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionFullWidth(),
			progressbar.OptionSetRenderBlankState(true),
		)
	}
	return p
}

func (p *progress) update(st swarm.Status) {
	if p.done {
		return
	}
	switch p.mode {
	case "bar":
		p.bar.Describe(fmt.Sprintf("%s ↓%s/s ↑%s/s %d peers", short(st), humanBytes(int64(st.DownRate)), humanBytes(int64(st.UpRate)), st.Peers))
		p.bar.Set64(st.BytesDone)
	case "log":
		now := time.Now()
		if now.Sub(p.lastLog) < p.logEvery && !st.Complete {
			return
		}
		p.lastLog = now
		fmt.Fprintln(p.w, statusLine(st))
	}
}

// short is the bar's description: pieces written and, with several
// swarms, how many each delivered.
func short(st swarm.Status) string {
	s := fmt.Sprintf("%d/%d pieces", st.Written, st.Pieces)
	if len(st.Workers) > 1 {
		for i, w := range st.Workers {
			sep := " · "
			if i == 0 {
				sep = " ["
			}
			s += fmt.Sprintf("%s%s %d", sep, w.Name, w.Delivered)
		}
		s += "]"
	}
	return s
}

// statusLine is the one-line form of a status, for logs.
func statusLine(st swarm.Status) string {
	pct := 100.0
	if st.Length > 0 {
		pct = 100 * float64(st.BytesDone) / float64(st.Length)
	}
	eta := "-"
	if st.DownRate > 0 && st.BytesDone < st.Length {
		eta = (time.Duration(float64(st.Length-st.BytesDone)/st.DownRate) * time.Second).Round(time.Second).String()
	}
	line := fmt.Sprintf("%5.1f%%  %s / %s  down %s/s  up %s/s  peers %d (%d seeds)  eta %s",
		pct, humanBytes(st.BytesDone), humanBytes(st.Length), humanBytes(int64(st.DownRate)),
		humanBytes(int64(st.UpRate)), st.Peers, st.Seeds, eta)
	if len(st.Workers) > 1 {
		for _, w := range st.Workers {
			line += fmt.Sprintf("  [%s: %d pieces, %s/s, %d peers]", w.Name, w.Delivered, humanBytes(int64(w.DownRate)), w.Peers)
		}
	}
	return line
}

func (p *progress) finish() {
	if p.done {
		return
	}
	p.done = true
	if p.bar != nil {
		p.bar.Finish()
		fmt.Fprintln(p.w)
	}
}
