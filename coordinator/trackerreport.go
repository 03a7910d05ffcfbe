package coordinator

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"time"

	"flotilla/tracker"
)

// TrackerReport is one tracker of a running job: its pipeline's status
// (tracker.TrackerStatus: last announce, last error, intervals, next
// announce), what the job's loop saw of its answers and of the watchdog's
// alerts, and its peer list.
type TrackerReport struct {
	tracker.TrackerStatus
	// LastErrAt is when the newest failure was reported (zero: none this
	// run).
	LastErrAt time.Time
	// Seeders and Leechers are from the newest announce or scrape answer
	// that gave them; -1 when unknown.
	Seeders, Leechers int64
	// Latency is how long the tracker's answers took, as the watchdog
	// measured them (the time from a request's packet being issued to
	// its being fulfilled).
	Latency LatencyStats
	// Overdue counts the tracker's watchdog packets (requests and
	// scheduled announces) that passed their deadline in this run.
	Overdue int
	// PeerList is the tracker's up-to-date peer list, freshest first, cut
	// to the maxPeers asked for; TrackerStatus.Peers is its full length.
	PeerList []netip.AddrPort
}

// ErrJobClosed is Trackers' error once the job's loop has stopped.
var ErrJobClosed = errors.New("coordinator: the job is closed")

// LatencyStats are quantiles over the newest LatencySamples answers.
type LatencyStats struct {
	Answers             int // answers measured in this run (all of them, not only the newest)
	Last, P50, P90, Max time.Duration
}

// LatencySamples is how many of a tracker's newest answers LatencyStats
// covers.
const LatencySamples = 64

// latencyRing keeps a tracker's newest answer times: a fixed cost per
// tracker (a job of 1,000 torrents holds thousands of them).
type latencyRing struct {
	d [LatencySamples]time.Duration
	n int
}

func (r *latencyRing) add(d time.Duration) {
	r.d[r.n%LatencySamples] = d
	r.n++
}

func (r *latencyRing) stats() LatencyStats {
	if r.n == 0 {
		return LatencyStats{}
	}
	k := min(r.n, LatencySamples)
	s := slices.Clone(r.d[:k])
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(k-1, int(q*float64(k)))] }
	return LatencyStats{Answers: r.n, Last: r.d[(r.n-1)%LatencySamples], P50: at(0.5), P90: at(0.9), Max: s[k-1]}
}

// trackerStats is what a job's loop knows of one tracker beyond its
// pipeline's status; part of trackerHealth.
type trackerStats struct {
	lat               latencyRing
	overdue           int
	lastErrAt         time.Time
	seeders, leechers int64
}

// stat returns url's stats, made on first use.
func (h *trackerHealth) stat(url string) *trackerStats {
	s := h.stats[url]
	if s == nil {
		s = &trackerStats{seeders: -1, leechers: -1}
		h.stats[url] = s
	}
	return s
}

// measure takes the figures of one update: how long an answered request
// took (a request that timed out or failed locally has no answer time),
// the swarm's size, when it failed.
func (h *trackerHealth) measure(u tracker.Update, now time.Time) {
	s := h.stat(u.URL)
	if u.Err == nil || errors.Is(u.Err, tracker.ErrTrackerFailure) {
		s.lat.add(u.Took)
	}
	if u.Err != nil {
		s.lastErrAt = now
	}
	switch {
	case u.Response != nil:
		if u.Response.Seeders >= 0 {
			s.seeders = u.Response.Seeders
		}
		if u.Response.Leechers >= 0 {
			s.leechers = u.Response.Leechers
		}
	case u.Scrape != nil:
		if u.Scrape.Seeders >= 0 {
			s.seeders = u.Scrape.Seeders
		}
		if u.Scrape.Leechers >= 0 {
			s.leechers = u.Scrape.Leechers
		}
	}
}

// Trackers reports the job's trackers, in the announce order (tier by
// tier), each with up to maxPeers of its peer list (0: none). It is nil
// for a job without trackers or not started. Unlike the other methods it
// may be called from any goroutine while the job runs: the pipelines and
// the job's loop answer it (the loop's share is a copy made on the loop).
// After Close it returns tracker.ErrClosed or ErrJobClosed.
func (j *Job) Trackers(ctx context.Context, maxPeers int) ([]TrackerReport, error) {
	if !j.started || j.ann == nil {
		return nil, nil
	}
	sts, err := j.ann.Status(ctx)
	if err != nil {
		return nil, err
	}
	stats := make(chan map[string]trackerStats, 1)
	f := func() {
		m := make(map[string]trackerStats, len(j.health.stats))
		for u, s := range j.health.stats {
			m[u] = *s
		}
		stats <- m
	}
	select {
	case j.cmds <- f:
	case <-j.done:
		return nil, ErrJobClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	m := <-stats
	out := make([]TrackerReport, len(sts))
	for i, st := range sts {
		r := TrackerReport{TrackerStatus: st, Seeders: -1, Leechers: -1}
		if s, ok := m[st.URL]; ok {
			r.LastErrAt, r.Seeders, r.Leechers = s.lastErrAt, s.seeders, s.leechers
			r.Latency, r.Overdue = s.lat.stats(), s.overdue
		}
		if maxPeers > 0 {
			entries, err := j.ann.Peers(ctx, st.URL)
			if err != nil {
				return nil, err
			}
			r.Peers = len(entries)
			r.PeerList = make([]netip.AddrPort, 0, min(len(entries), maxPeers))
			for _, e := range entries[:min(len(entries), maxPeers)] {
				r.PeerList = append(r.PeerList, e.Addr)
			}
		}
		out[i] = r
	}
	return out, nil
}
