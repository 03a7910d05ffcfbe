package service

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"flotilla/coordinator"
	"flotilla/metainfo"
	"flotilla/peerwire"
	"flotilla/swarm"
)

// job is one torrent in the registry, owned by Service.run.
type job struct {
	rec *record
	t   *metainfo.Torrent

	run      runner        // nil while not running
	stopPump chan struct{} // closed to stop the event pump of run
	// busy: a start or a close is in flight on a goroutine of its own;
	// starting tells which.
	busy, starting bool
	runSeeds       bool   // run was started to keep seeding once complete
	waiting        string // why a queued job does not start
	status         swarm.Status
	seedStart      time.Time // when this run began seeding (zero: not seeding)
	trackers       map[string]*trackerState
	// lastSources is who delivered each piece in the last run that
	// ended (the piece map of a job that is not running).
	lastSources *swarm.PieceSources
	// handover are the connections of the magnet fetch that added the
	// job, for its first start; the reconcile that follows the add
	// gives them to startOpen or closes them (a queued or paused job
	// would leave the peers waiting on an idle connection).
	handover []peerwire.Handover

	removing   bool
	deleteData bool
	onRemoved  []chan error
}

// trackerState is what the job's events said about one tracker.
type trackerState struct {
	lastError   string
	errorAt     time.Time
	overdue     int
	lastOverdue time.Duration
	overdueAt   time.Time
}

func newJob(rec *record, t *metainfo.Torrent) *job {
	return &job{rec: rec, t: t, trackers: map[string]*trackerState{}}
}

// Job states, as the API reports them.
const (
	StateQueued      = "queued"
	StateChecking    = "checking"
	StateDownloading = "downloading"
	StateSeeding     = "seeding"
	StatePaused      = "paused"
	StateDone        = "done"
	StateFailed      = "failed"
	StateRemoving    = "removing"
)

func (j *job) state() string {
	switch {
	case j.removing:
		return StateRemoving
	case j.rec.Error != "":
		return StateFailed
	case j.rec.Paused:
		return StatePaused
	case j.busy && j.starting:
		return StateChecking
	case j.run != nil && j.rec.Complete:
		return StateSeeding
	case j.run != nil:
		return StateDownloading
	case j.rec.Complete:
		return StateDone
	}
	return StateQueued
}

// uploaded, downloaded and seeded count this run too.
func (j *job) uploaded() int64   { return j.rec.Uploaded + j.status.Uploaded }
func (j *job) downloaded() int64 { return j.rec.Downloaded + j.status.Downloaded }

func (j *job) seeded(now time.Time) time.Duration {
	if j.seedStart.IsZero() {
		return j.rec.Seeded
	}
	return j.rec.Seeded + now.Sub(j.seedStart)
}

func (j *job) ratio() float64 {
	if j.t.Info.Length == 0 {
		return 0
	}
	return float64(j.uploaded()) / float64(j.t.Info.Length)
}

// limitReached reports whether a complete job has seeded enough.
func (j *job) limitReached(now time.Time) bool {
	l := j.rec.Limits
	return !l.Seed || l.Ratio > 0 && j.ratio() >= l.Ratio || l.Time > 0 && j.seeded(now) >= time.Duration(l.Time)
}

// wantRunning is the job's desired state.
func (j *job) wantRunning(now time.Time) bool {
	return !j.removing && j.rec.Error == "" && !j.rec.Paused && !(j.rec.Complete && j.limitReached(now))
}

// snapshot is the record with this run's figures folded in.
func (j *job) snapshot(now time.Time) *record {
	r := *j.rec
	r.Uploaded, r.Downloaded, r.Seeded = j.uploaded(), j.downloaded(), j.seeded(now)
	if j.run != nil && j.status.Pieces > 0 {
		r.BytesDone, r.PiecesDone = j.status.BytesDone, j.status.Written
	}
	return &r
}

// ordered returns the jobs oldest first.
func ordered(jobs map[string]*job) []*job {
	out := make([]*job, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, j)
	}
	sort.Slice(out, func(a, b int) bool {
		if !out[a].rec.Added.Equal(out[b].rec.Added) {
			return out[a].rec.Added.Before(out[b].rec.Added)
		}
		return out[a].rec.ID < out[b].rec.ID
	})
	return out
}

// reconcile starts the jobs that should run and closes those that should
// not, oldest first; downloads take one of MaxActive slots.
func (s *Service) reconcile() {
	defer s.dropHandovers()
	if s.stopping {
		return
	}
	now := time.Now()
	active := 0
	for _, j := range s.jobs {
		if (j.run != nil || j.busy) && !j.rec.Complete {
			active++
		}
	}
	for _, j := range ordered(s.jobs) {
		if j.removing && j.run == nil && !j.busy {
			s.finishRemove(j)
			continue
		}
		if j.busy {
			continue
		}
		want := j.wantRunning(now)
		switch {
		case j.run != nil && !want:
			s.startClose(j)
		case j.run != nil && j.rec.Complete && !j.runSeeds:
			// Complete, and to seed since its limits changed: restarted
			// as a seeder.
			s.startClose(j)
		case j.run == nil && want && (j.rec.Complete || active < s.cfg.MaxActive):
			if !j.rec.Complete {
				active++
			}
			s.startOpen(j)
		case j.run == nil && want:
			j.waiting = "waiting for a download slot (--max-active)"
		}
	}
}

// dropHandovers closes the fetch connections of jobs that did not start
// at once (see job.handover).
func (s *Service) dropHandovers() {
	for _, j := range s.jobs {
		if j.handover != nil {
			closeHandover(j.handover)
			j.handover = nil
		}
	}
}

// startOpen opens and starts the job on a goroutine of its own.
func (s *Service) startOpen(j *job) {
	j.busy, j.starting, j.waiting = true, true, ""
	spec := jobSpec{torrent: j.t, dir: s.cfg.jobDir(j.rec.ID), tiers: usableTiers(j.t), seed: j.rec.Limits.Seed,
		peers: append(slices.Clip(s.cfg.Peers), j.rec.peers()...), handover: j.handover}
	j.handover = nil // the engine's start owns them
	j.runSeeds = spec.seed
	go func() {
		var r runner
		err := os.MkdirAll(spec.dir, 0o755)
		if err == nil {
			r, err = s.eng.start(spec)
		} else {
			closeHandover(spec.handover)
		}
		s.started <- startResult{j: j, r: r, err: err}
	}()
}

func (s *Service) onStarted(res startResult) {
	j := res.j
	j.busy, j.starting = false, false
	if res.err != nil {
		j.rec.Error = "cannot start: " + res.err.Error()
		s.log.Error("job failed to start", "id", j.rec.ID, "err", res.err)
		s.save()
		return
	}
	j.run, j.stopPump = res.r, make(chan struct{})
	j.status = swarm.Status{}
	j.setPieces(res.r.PiecesComplete())
	if j.rec.Complete {
		j.seedStart = time.Now()
	}
	go s.pump(j, res.r, j.stopPump)
	if s.stopping || j.removing {
		s.startClose(j)
	}
}

// pump hands run's events to the loop until stop is closed.
func (s *Service) pump(j *job, r runner, stop chan struct{}) {
	for {
		select {
		case ev := <-r.Events():
			select {
			case s.events <- jobEvent{j: j, r: r, ev: ev}:
			case <-stop:
				return
			}
		case <-stop:
			return
		}
	}
}

// startClose closes the job's run on a goroutine of its own, folding the
// run's figures into the record first.
func (s *Service) startClose(j *job) {
	now := time.Now()
	*j.rec = *j.snapshot(now)
	j.status.Uploaded, j.status.Downloaded = 0, 0
	j.seedStart = time.Time{}
	close(j.stopPump)
	r := j.run
	j.run, j.busy = nil, true
	go func() {
		sources := lastSources(r)
		err := r.Close()
		s.closed <- closeResult{j: j, err: err, pieces: r.PiecesComplete(), sources: sources}
	}()
}

// setPieces records how many pieces the store holds (and about how many
// bytes that is: the last piece may be shorter).
func (j *job) setPieces(n int) {
	info := j.t.Info
	j.rec.PiecesDone = n
	j.rec.BytesDone = min(int64(n)*info.PieceLength, info.Length)
}

func (s *Service) onClosed(res closeResult) {
	j := res.j
	j.busy = false
	if res.err != nil {
		s.log.Warn("job closed with an error", "id", j.rec.ID, "err", res.err)
	}
	j.status = swarm.Status{}
	j.setPieces(res.pieces)
	if res.sources != nil {
		j.lastSources = res.sources
	}
	s.save()
}

func (s *Service) onEvent(j *job, ev coordinator.Event) {
	now := time.Now()
	if level, msg, ok := alertOf(ev); ok {
		s.alerts.add(j.rec.ID, level, msg)
	}
	switch ev := ev.(type) {
	case coordinator.Progress:
		j.status = ev.Status
	case coordinator.Completed:
		j.status = ev.Status
		if !j.rec.Complete {
			j.rec.Complete, j.rec.CompletedAt = true, now
			j.seedStart = now
			s.log.Info("job complete", "id", j.rec.ID, "name", j.rec.Name)
			s.save()
		}
	case coordinator.Failed:
		j.rec.Error = ev.Err.Error()
		s.log.Error("job failed", "id", j.rec.ID, "err", ev.Err)
		s.save()
	case coordinator.TrackersSilent:
		for _, te := range ev.Errors {
			ts := j.tracker(te.URL)
			ts.lastError, ts.errorAt = te.Err.Error(), now
		}
	case coordinator.Overdue:
		if ev.Tracker != "" {
			ts := j.tracker(ev.Tracker)
			ts.overdue++
			ts.lastOverdue, ts.overdueAt = ev.Waited, now
		}
	}
}

func (j *job) tracker(url string) *trackerState {
	ts := j.trackers[url]
	if ts == nil {
		ts = &trackerState{}
		j.trackers[url] = ts
	}
	return ts
}

// finishRemove drops a closed job from the registry and its files from
// the state directory; its data goes too if asked.
func (s *Service) finishRemove(j *job) {
	delete(s.jobs, j.rec.ID)
	s.listChanged.Store(true) // Remove returns now: the list must not show it
	s.save()
	err := os.Remove(torrentPath(s.cfg.StateDir, j.rec.ID))
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	if j.deleteData {
		if derr := trash(s.cfg.DataDir, s.cfg.jobDir(j.rec.ID)); err == nil {
			err = derr
		}
	}
	for _, c := range j.onRemoved {
		c <- err
	}
}

// jobDir is where job id's data goes.
func (c *Config) jobDir(id string) string { return filepath.Join(c.DataDir, id) }

// usableTiers returns the torrent's tracker tiers without the URLs that
// cannot be announced to.
func usableTiers(t *metainfo.Torrent) [][]string {
	var out [][]string
	for _, tier := range t.Tiers() {
		var keep []string
		for _, u := range tier {
			if metainfo.CheckTrackerURL(u) == nil {
				keep = append(keep, u)
			}
		}
		if len(keep) > 0 {
			out = append(out, keep)
		}
	}
	return out
}

// trashPrefix starts the names of data directories being deleted.
const trashPrefix = ".trash-"

// trash moves dir out of the way at once (a rename in the data root) and
// deletes it on a goroutine of its own: the loop does not wait for a
// large tree to go, and a job added again gets a fresh directory.
func trash(dataDir, dir string) error {
	tmp, err := os.MkdirTemp(dataDir, trashPrefix)
	if err != nil {
		return err
	}
	to := filepath.Join(tmp, "data")
	if err := os.Rename(dir, to); err != nil {
		os.Remove(tmp)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	go os.RemoveAll(tmp)
	return nil
}

// emptyTrash deletes what a stopped daemon left being deleted.
func emptyTrash(dataDir string) {
	ents, _ := os.ReadDir(dataDir)
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), trashPrefix) {
			go os.RemoveAll(filepath.Join(dataDir, e.Name()))
		}
	}
}
