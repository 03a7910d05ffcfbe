package main

import (
	"time"

	"flotilla/swarm"
)

// etaWindow is how far back the ETA looks: the rate it assumes is the
// average over the last etaWindow, or since the first byte arrived when
// that is more recent. etaMinSpan is the least span it estimates from.
const (
	etaWindow  = 30 * time.Second
	etaMinSpan = time.Second
)

// etaEstimator estimates the time left from the payload received since the
// first byte arrived, not from the start of the command: the seconds spent
// reading the torrent, asking trackers and shaking hands say nothing about
// the speed of the transfer. It does not use the swarm's smoothed rate
// either, which starts from the first fraction of a second of slow start
// (a 13-second download showed an ETA of 34 minutes). A passive value,
// owned by the progress display.
type etaEstimator struct {
	samples []etaSample // oldest first; the first is at or after the first byte
}

type etaSample struct {
	at   time.Time
	recv int64 // payload bytes received (Status.Downloaded)
}

// observe records st at now and returns the estimated time left, false if
// there is no estimate yet (no payload for etaMinSpan, or nothing moving
// in the window).
func (e *etaEstimator) observe(now time.Time, st swarm.Status) (time.Duration, bool) {
	if st.Downloaded <= 0 && len(e.samples) == 0 {
		return 0, false // no byte yet
	}
	e.samples = append(e.samples, etaSample{now, st.Downloaded})
	// Keep the newest sample at or before the window's start as the base.
	drop := 0
	for drop+1 < len(e.samples) && now.Sub(e.samples[drop+1].at) >= etaWindow {
		drop++
	}
	e.samples = e.samples[drop:]
	base := e.samples[0]
	span := now.Sub(base.at)
	left := st.Length - st.BytesDone
	if span < etaMinSpan || left <= 0 || st.Downloaded <= base.recv {
		return 0, false
	}
	rate := float64(st.Downloaded-base.recv) / span.Seconds()
	return time.Duration(float64(left) / rate * float64(time.Second)), true
}

// etaText shows a time left in whole seconds, rounded up (a second and a
// bit shows 2s, never 0s), or "-" without an estimate.
func etaText(left time.Duration, ok bool) string {
	if !ok || left <= 0 {
		return "-"
	}
	return ((left + time.Second - 1) / time.Second * time.Second).String()
}
