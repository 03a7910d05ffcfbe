package k8stest

import (
	"fmt"
	"testing"
	"time"

	"flotilla/internal/testenv"
	"flotilla/service"
)

// watch follows one job through the API, every half second: its latest
// detail, every swarm node's largest pieces_delivered, when each node's
// first piece was seen, and every state the job was seen in.
type watch struct {
	t        *testing.T
	api      *service.Client
	id       string
	last     service.JobDetail
	answered bool // the API answered the latest poll
	maxDeliv map[string]int
	runDeliv map[string]int // every worker's (local too) pieces accepted in this run of the job
	first    map[string]time.Time
	states   map[string]bool
}

func newWatch(t *testing.T, api *service.Client, id string) *watch {
	return &watch{t: t, api: api, id: id, maxDeliv: map[string]int{}, runDeliv: map[string]int{}, first: map[string]time.Time{}, states: map[string]bool{}}
}

// poll reads the job once.
func (w *watch) poll() {
	j, ok := getJob(w.api, w.id)
	w.answered = ok
	if !ok {
		return
	}
	w.last = j
	w.states[j.State] = true
	for _, wk := range j.Workers {
		w.runDeliv[wk.Name] = max(w.runDeliv[wk.Name], wk.Delivered)
	}
	for name, wk := range nodeWorkers(j) {
		if wk.Delivered > w.maxDeliv[name] {
			w.maxDeliv[name] = wk.Delivered
		}
		if wk.Delivered > 0 && w.first[name].IsZero() {
			w.first[name] = time.Now()
		}
	}
}

// until polls until cond holds on the latest answer.
func (w *watch) until(timeout time.Duration, what string, cond func(j service.JobDetail) bool) {
	w.t.Helper()
	testenv.WaitEvery(w.t, timeout, 500*time.Millisecond, what, func() bool {
		w.poll()
		return w.answered && cond(w.last)
	})
}

// complete waits for the download to be complete and checks it never failed.
func (w *watch) complete(timeout time.Duration) {
	w.t.Helper()
	w.until(timeout, "job "+w.id+" to complete", func(j service.JobDetail) bool {
		if j.State == "failed" {
			w.t.Fatalf("job %s failed: %s", w.id, j.Error)
		}
		return j.State == "seeding" || j.State == "done"
	})
	if w.states["failed"] {
		w.t.Errorf("job %s was seen failed on the way", w.id)
	}
}

// atFraction waits until at least frac of the pieces are verified.
func (w *watch) atFraction(frac float64) {
	w.t.Helper()
	w.until(5*time.Minute, "job "+w.id+" to pass "+pct(frac), func(j service.JobDetail) bool {
		return j.Pieces > 0 && float64(j.PiecesDone) >= frac*float64(j.Pieces)
	})
	if w.last.State == "seeding" || w.last.State == "done" {
		w.t.Fatalf("job %s completed before the step could run mid-download: slow the seeders", w.id)
	}
}

func pct(f float64) string { return fmt.Sprintf("%.0f%%", f*100) }

func sumValues(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
