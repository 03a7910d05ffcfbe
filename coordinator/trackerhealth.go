package coordinator

import (
	"time"

	"flotilla/tracker"
)

// Default tracker-health timings: a user whose trackers all fail and who
// has no peers would otherwise see 0% and "peers 0" forever, so once no
// tracker has answered for defaultTrackerSilentAfter (since the start, or
// since the last one that was answering began to fail) and there are no
// peers, a TrackersSilent event is reported, at most every
// defaultTrackerWarnEvery.
const (
	defaultTrackerSilentAfter = 15 * time.Second
	defaultTrackerWarnEvery   = time.Minute
)

// TrackersSilent reports that no tracker of a job is answering and there
// are no peers. The trackers keep retrying on their own back-off.
type TrackersSilent struct {
	// For is how long no tracker has answered.
	For time.Duration
	// Lapsed is set when some tracker did answer earlier and every one
	// that did now fails (For counts from the last one's failure);
	// otherwise none has ever answered (For counts from the start).
	Lapsed bool
	// Errors are the newest error of each failing tracker, in tier order;
	// empty when none has replied at all yet.
	Errors []TrackerError
}

// TrackerError is one tracker's newest announce error.
type TrackerError struct {
	URL string
	Err error
}

// trackerHealth follows whether a torrent's trackers answer, from the
// announce results the pipelines report. A tracker is healthy while its
// newest announce succeeded; it answers on its own schedule (every few
// minutes), so the time since the last answer says nothing about health —
// a tracker that answered "started" and has nothing more to say is fine.
// It is a passive value (no goroutines, no locks) owned by its job's loop.
type trackerHealth struct {
	silentAfter, warnEvery time.Duration

	start    time.Time
	ok       map[string]bool      // newest announce result per tracker URL
	errs     map[string]error     // newest error per tracker URL, cleared when it answers
	slowAt   map[string]time.Time // trackers past a watchdog deadline, until they answer
	silentAt time.Time            // when the last healthy tracker began to fail (zero: none ever answered)
	lastWarn time.Time            // last warning reported
	stats    map[string]*trackerStats
}

// newTrackerHealth starts following trackers at start: a warning is due
// after silentAfter without an answering tracker, and repeats at most
// every warnEvery.
func newTrackerHealth(start time.Time, silentAfter, warnEvery time.Duration) *trackerHealth {
	return &trackerHealth{silentAfter: silentAfter, warnEvery: warnEvery, start: start,
		ok: make(map[string]bool), errs: make(map[string]error), slowAt: make(map[string]time.Time),
		stats: make(map[string]*trackerStats)}
}

// record takes one update. Scrapes count for the tracker's figures
// (measure), not for its health: many trackers that announce well do not
// scrape.
func (h *trackerHealth) record(u tracker.Update, now time.Time) {
	h.measure(u, now)
	if u.Kind == tracker.UpdateScrape {
		return
	}
	wasHealthy := h.healthy()
	if u.Err != nil {
		h.ok[u.URL] = false
		h.errs[u.URL] = u.Err
		if wasHealthy && !h.healthy() {
			h.silentAt = now
		}
		return
	}
	h.ok[u.URL] = true
	delete(h.errs, u.URL)
	delete(h.slowAt, u.URL)
}

// slow records that a request to tracker url (or its scheduled announce)
// passed its watchdog deadline at now (each one is counted): the tracker counts as not
// answering, with ErrTrackerSlow as its error unless it has a newer one,
// until it answers. It reports whether this is news (the tracker was not
// slow already).
func (h *trackerHealth) slow(url string, now time.Time) bool {
	h.stat(url).overdue++
	if _, already := h.slowAt[url]; already {
		return false
	}
	wasHealthy := h.healthy()
	h.slowAt[url] = now
	h.ok[url] = false
	if _, ok := h.errs[url]; !ok {
		h.errs[url] = ErrTrackerSlow
	}
	if wasHealthy && !h.healthy() {
		h.silentAt = now
	}
	return true
}

// healthy reports whether some tracker's newest announce succeeded.
func (h *trackerHealth) healthy() bool {
	for _, ok := range h.ok {
		if ok {
			return true
		}
	}
	return false
}

// warning returns the warning due at now, if one is: no tracker is
// answering (none ever has, or every one that did now fails) for at least
// silentAfter, there are no peers, and the last warning was at least
// warnEvery ago. tiers orders the trackers' errors.
func (h *trackerHealth) warning(now time.Time, peers int, tiers [][]string) (TrackersSilent, bool) {
	if peers > 0 || h.healthy() {
		return TrackersSilent{}, false
	}
	since, lapsed := h.start, false
	if !h.silentAt.IsZero() {
		since, lapsed = h.silentAt, true
	}
	silent := now.Sub(since)
	if silent < h.silentAfter || (!h.lastWarn.IsZero() && now.Sub(h.lastWarn) < h.warnEvery) {
		return TrackersSilent{}, false
	}
	h.lastWarn = now
	w := TrackersSilent{For: silent, Lapsed: lapsed}
	for _, tier := range tiers {
		for _, u := range tier {
			if err, ok := h.errs[u]; ok {
				w.Errors = append(w.Errors, TrackerError{URL: u, Err: err})
			}
		}
	}
	return w, true
}
