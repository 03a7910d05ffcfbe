package main

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"flotilla/tracker"
)

// A user whose trackers all fail and who has no peers would otherwise see
// 0% and "peers 0" forever: once no tracker has answered for
// trackerSilentAfter (since the start, or since the last one that was
// answering began to fail) and there are no peers, a warning naming the
// trackers' errors is printed, at most every trackerWarnEvery. Variables so
// that a test can shorten them.
var (
	trackerSilentAfter = 15 * time.Second
	trackerWarnEvery   = time.Minute
)

// trackerHealth follows whether a torrent's trackers answer, from the
// announce results the pipelines report. A tracker is healthy while its
// newest announce succeeded; it answers on its own schedule (every few
// minutes), so the time since the last answer says nothing about health —
// a tracker that answered "started" and has nothing more to say is fine.
// It is a passive value owned by the session's loop.
type trackerHealth struct {
	start    time.Time
	ok       map[string]bool  // newest announce result per tracker URL
	errs     map[string]error // newest error per tracker URL, cleared when it answers
	silentAt time.Time        // when the last healthy tracker began to fail (zero: none ever answered)
	lastWarn time.Time        // last warning printed
}

func newTrackerHealth(start time.Time) *trackerHealth {
	return &trackerHealth{start: start, ok: make(map[string]bool), errs: make(map[string]error)}
}

// record takes one update. Scrapes do not count: many trackers that
// announce well do not scrape.
func (h *trackerHealth) record(u tracker.Update, now time.Time) {
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

// warning returns the warning to print at now, if one is due: no tracker
// is answering (none ever has, or every one that did now fails), for at
// least trackerSilentAfter, there are no peers, and the last warning was
// at least trackerWarnEvery ago. tiers orders the trackers' errors.
func (h *trackerHealth) warning(now time.Time, peers int, tiers [][]string) (string, bool) {
	if peers > 0 || h.healthy() {
		return "", false
	}
	since, what := h.start, "no tracker has answered"
	if !h.silentAt.IsZero() {
		since, what = h.silentAt, "no tracker has answered (every one that did now fails)"
	}
	silent := now.Sub(since)
	if silent < trackerSilentAfter || (!h.lastWarn.IsZero() && now.Sub(h.lastWarn) < trackerWarnEvery) {
		return "", false
	}
	h.lastWarn = now
	var errs []string
	for _, tier := range tiers {
		for _, u := range tier {
			if err, ok := h.errs[u]; ok {
				errs = append(errs, u+": "+briefError(err))
			}
		}
	}
	last := "none has replied yet"
	if len(errs) > 0 {
		last = "last errors: " + strings.Join(errs, "; ")
	}
	return fmt.Sprintf("warning: %s for %s and there are no peers; still retrying (%s)",
		what, silent.Round(time.Second), last), true
}

// briefError shortens a tracker error for a one-line warning: a network
// error is reduced to its cause (the URL is printed beside it), and the
// text is capped.
func briefError(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		err = op.Err
	}
	msg := err.Error()
	if r := []rune(msg); len(r) > 100 {
		msg = string(r[:99]) + "…"
	}
	return msg
}
