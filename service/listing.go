package service

import (
	"bytes"
	"encoding/json"
	"slices"
	"sync"
	"time"
)

// The list of jobs is a snapshot the loop builds when a reader wants it
// and something changed, and its JSON is encoded once per snapshot: a
// thousand jobs are neither sorted, summarised nor encoded per request,
// and a request does not wait for the loop while the snapshot is fresh.
const (
	// listProgressAge is how old a snapshot may be while the only changes
	// since are the jobs' own (progress, starts, closes, completions), not
	// a caller's: a caller sees its own change at once.
	listProgressAge = 250 * time.Millisecond
	// listMaxAge is how old a snapshot may be at all (seeding times grow).
	listMaxAge = time.Second
)

// listSnapshot is every job as List reports it. Read-only once built.
type listSnapshot struct {
	jobs  []JobInfo
	built time.Time
	once  sync.Once
	body  []byte // the API's JSON of jobs, on first use
}

// json is the body of GET /api/v1/torrents.
func (l *listSnapshot) json() []byte {
	l.once.Do(func() {
		jobs := l.jobs
		if jobs == nil {
			jobs = []JobInfo{}
		}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetIndent("", "  ")
		enc.Encode(map[string]any{"torrents": jobs})
		l.body = b.Bytes()
	})
	return l.body
}

// fresh reports whether l may be served as it is at now.
func (s *Service) fresh(l *listSnapshot, now time.Time) bool {
	age := now.Sub(l.built)
	return !s.listChanged.Load() && age < listMaxAge && !(s.listProgress.Load() && age >= listProgressAge)
}

// listing returns a fresh snapshot of the jobs. One that is only old (not
// changed by a command, a start, a close or a state change) is still
// served for up to listMaxAge more while the loop builds the next: a
// request waits for the loop only after a change.
func (s *Service) listing() (*listSnapshot, error) {
	now := time.Now()
	if l := s.list.Load(); l != nil && !s.listChanged.Load() {
		if s.fresh(l, now) {
			return l, nil
		}
		if now.Sub(l.built) < 2*listMaxAge {
			select {
			case s.listWanted <- struct{}{}:
			default: // asked already
			}
			return l, nil
		}
	}
	var l *listSnapshot
	err := s.do(func() { l = s.buildList() })
	return l, err
}

// buildList builds the snapshot, unless a fresh one was built meanwhile,
// and encodes it off the loop.
func (s *Service) buildList() *listSnapshot {
	now := time.Now()
	if l := s.list.Load(); l != nil && s.fresh(l, now) {
		return l
	}
	s.listChanged.Store(false)
	s.listProgress.Store(false)
	l := &listSnapshot{built: now}
	for _, j := range ordered(s.jobs) {
		l.jobs = append(l.jobs, s.info(j, now))
	}
	for _, f := range s.fetching {
		l.jobs = append(l.jobs, f.info())
	}
	s.list.Store(l)
	go l.json()
	return l
}

// List returns every job, oldest first.
func (s *Service) List() ([]JobInfo, error) {
	l, err := s.listing()
	if err != nil {
		return nil, err
	}
	return slices.Clone(l.jobs), nil
}
