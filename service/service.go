package service

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"flotilla/coordinator"
	"flotilla/metainfo"
	"flotilla/swarm"
)

// Errors of the Service's methods, for errors.Is; the HTTP layer turns
// them into status codes.
var (
	ErrNotFound   = errors.New("no such job")
	ErrExists     = errors.New("the torrent is already added")
	ErrBadTorrent = errors.New("not a usable torrent")
	ErrMagnet     = errors.New("magnet links are not supported yet: metadata exchange (BEP 9) is not implemented; add the .torrent file")
	ErrClosed     = errors.New("the service is shutting down")
)

// Service is the daemon: the job registry and the engine that runs jobs.
// Its methods are safe for concurrent use.
type Service struct {
	cfg Config
	log *slog.Logger
	eng engine

	cmds     chan func()
	started  chan startResult
	closed   chan closeResult
	events   chan jobEvent
	closing  chan struct{} // closed by Close: the loop closes every job
	done     chan struct{} // closed when the loop has returned
	ready    atomic.Bool
	closeErr error

	// The list's snapshot (listing.go): a caller's change (add, pause,
	// resume, limits, remove) sets listChanged, the jobs' own (progress,
	// starts, closes, completions) set listProgress; building a snapshot
	// clears both.
	list                      atomic.Pointer[listSnapshot]
	listChanged, listProgress atomic.Bool
	listWanted                chan struct{} // a reader served an old snapshot: build the next

	// Owned by run.
	jobs      map[string]*job
	stopping  bool
	lastSave  time.Time
	saveFails int
	alerts    alertLog
	fetching  map[string]*magnetFetch // magnet links whose info is being fetched (magnet.go)
	fetches   sync.WaitGroup          // their goroutines, waited for by Close
}

type startResult struct {
	j   *job
	r   runner
	err error
}

type closeResult struct {
	j      *job
	err    error
	pieces int // the store's complete pieces after Close
	// sources is who delivered each piece in the closed run (nil if the
	// run could not say).
	sources *swarm.PieceSources
}

type jobEvent struct {
	j  *job
	r  runner
	ev coordinator.Event
}

// New loads the state under cfg.StateDir, opens the coordinator (and joins
// the cluster) and resumes every job that was running.
func New(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ccfg := cfg.Coordinator
	ccfg.Logger = cfg.Logger
	return newService(cfg, func() (engine, error) { return newCoordEngine(ccfg, cfg.Cluster, cfg.Job) })
}

func newService(cfg Config, newEngine func() (engine, error)) (*Service, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, d := range []string{cfg.StateDir, filepath.Join(cfg.StateDir, "torrents"), cfg.DataDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	emptyTrash(cfg.DataDir)
	sf, err := loadState(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	jobs := map[string]*job{}
	for _, rec := range sf.Jobs {
		t, err := metainfo.Load(torrentPath(cfg.StateDir, rec.ID))
		if err != nil {
			return nil, fmt.Errorf("job %s (%s): %w; remove its entry from %s to start without it", rec.ID, rec.Name, err, jobsPath(cfg.StateDir))
		}
		jobs[rec.ID] = newJob(rec, t)
	}
	eng, err := newEngine()
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, log: log, eng: eng,
		cmds: make(chan func()), started: make(chan startResult), closed: make(chan closeResult),
		events: make(chan jobEvent), closing: make(chan struct{}), done: make(chan struct{}),
		listWanted: make(chan struct{}, 1),
		jobs:       jobs}
	for _, mr := range sf.Magnets {
		m, err := metainfo.ParseMagnet(mr.URI)
		if err != nil {
			return nil, fmt.Errorf("magnet %s: %w; remove its entry from %s to start without it", mr.ID, err, jobsPath(cfg.StateDir))
		}
		if _, done := jobs[mr.ID]; !done { // its info arrived before the last save
			s.startFetch(&magnetFetch{m: m, rec: mr})
		}
	}
	go s.run()
	s.ready.Store(true)
	return s, nil
}

// Ready reports whether the state is loaded, the listener is up (and the
// cluster joined, if configured) and the service is not shutting down.
func (s *Service) Ready() bool { return s.ready.Load() && s.clusterReady() }

// PeerAddr is the peer listener's address.
func (s *Service) PeerAddr() string { return s.eng.addr() }

// run owns the registry.
func (s *Service) run() {
	defer close(s.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	s.reconcile()
	for {
		closing := s.closing
		if s.stopping {
			closing = nil
			if !anyBusy(s.jobs) {
				s.save()
				return
			}
		}
		select {
		case <-closing:
			s.stopping = true
			s.ready.Store(false)
			for _, j := range s.jobs {
				if j.run != nil && !j.busy {
					s.startClose(j)
				}
			}
		case f := <-s.cmds:
			f() // those that change a job set listChanged
			s.reconcile()
		case res := <-s.started:
			s.onStarted(res)
			s.reconcile()
			s.listProgress.Store(true)
		case res := <-s.closed:
			s.onClosed(res)
			s.reconcile()
			s.listProgress.Store(true)
		case e := <-s.events:
			if e.j.run == e.r { // a closed run's late events are dropped
				s.onEvent(e.j, e.ev)
				// Progress, from every running job whose status changed,
				// changes nothing to reconcile unless it ends the job's
				// seeding.
				if _, progress := e.ev.(coordinator.Progress); !progress || !e.j.wantRunning(time.Now()) {
					s.reconcile()
				}
				s.listProgress.Store(true)
			}
		case <-s.listWanted:
			s.buildList()
		case now := <-tick.C:
			s.reconcile()
			if now.Sub(s.lastSave) >= s.cfg.SaveEvery && anyRunning(s.jobs) {
				s.save()
			}
		}
	}
}

// do runs f on the loop and waits for it; ErrClosed once the service is
// shutting down.
func (s *Service) do(f func()) error {
	ran := make(chan struct{})
	select {
	case s.cmds <- func() { f(); close(ran) }:
		<-ran
		return nil
	case <-s.closing:
		return ErrClosed
	case <-s.done:
		return ErrClosed
	}
}

// Close closes every job (their trackers hear "stopped", their stores
// flush), writes the state and closes the engine. It gives up waiting for
// the jobs after Config.CloseTimeout.
func (s *Service) Close() error {
	select {
	case <-s.closing:
		<-s.done
		return s.closeErr
	default:
	}
	close(s.closing)
	select {
	case <-s.done:
	case <-time.After(s.cfg.CloseTimeout):
		return fmt.Errorf("jobs did not close within %v; the state file has the figures of the last save", s.cfg.CloseTimeout)
	}
	s.fetches.Wait()
	s.closeErr = s.eng.close()
	return s.closeErr
}

func anyBusy(jobs map[string]*job) bool {
	for _, j := range jobs {
		if j.busy {
			return true
		}
	}
	return false
}

func anyRunning(jobs map[string]*job) bool {
	for _, j := range jobs {
		if j.run != nil {
			return true
		}
	}
	return false
}

// save writes the state file; a failure is logged and retried at the
// next save (the jobs go on).
func (s *Service) save() {
	recs := make([]*record, 0, len(s.jobs))
	for _, j := range s.jobs {
		if !j.removing {
			recs = append(recs, j.snapshot(time.Now()))
		}
	}
	magnets := make([]magnetRecord, 0, len(s.fetching))
	for _, f := range s.fetching {
		magnets = append(magnets, f.rec)
	}
	s.lastSave = time.Now()
	if err := saveState(s.cfg.StateDir, recs, magnets); err != nil {
		s.saveFails++
		s.log.Error("cannot write the state file", "path", jobsPath(s.cfg.StateDir), "err", err)
	}
}
