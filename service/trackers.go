package service

import (
	"context"
	"time"

	"flotilla/coordinator"
)

// MaxTrackerPeers is how many of each tracker's peers a job's detail
// lists (TrackerInfo.PeersTotal counts them all).
const MaxTrackerPeers = 200

// trackerReportTimeout bounds how long a detail waits for a job's
// trackers to report (a job closing meanwhile answers at once).
const trackerReportTimeout = 2 * time.Second

// TrackerLatency is how long a tracker's answers took, as the watchdog
// measured them, over its newest coordinator.LatencySamples answers.
type TrackerLatency struct {
	Answers int      `json:"answers"` // answers measured in this run
	Last    Duration `json:"last"`
	P50     Duration `json:"p50"`
	P90     Duration `json:"p90"`
	Max     Duration `json:"max"`
}

// addTrackerReports fills d's trackers with what the running job's
// pipelines and loop report (coordinator.Job.Trackers), each with up to
// maxPeers of its peer list. It runs outside the service's loop: the
// job's own goroutines answer. A job that cannot answer (it is closing)
// leaves d as it was.
func addTrackerReports(d *JobDetail, r runner, maxPeers int) {
	ctx, cancel := context.WithTimeout(context.Background(), trackerReportTimeout)
	defer cancel()
	reps, err := r.Trackers(ctx, maxPeers)
	if err != nil {
		return
	}
	at := make(map[string]*TrackerInfo, len(d.Trackers))
	for i := range d.Trackers {
		at[d.Trackers[i].URL] = &d.Trackers[i]
	}
	for _, rep := range reps {
		ti := at[rep.URL]
		if ti == nil {
			continue
		}
		fillTracker(ti, rep)
	}
}

func fillTracker(ti *TrackerInfo, rep coordinator.TrackerReport) {
	ti.Protocol, ti.Active, ti.Failures = rep.Protocol, rep.Active, rep.Failures
	ti.LastAnnounce, ti.NextAnnounce = rep.LastAnnounce, rep.NextAnnounce
	ti.Interval, ti.MinInterval = Duration(rep.Interval), Duration(rep.MinInterval)
	if rep.LastErr != nil {
		ti.LastError, ti.ErrorAt = rep.LastErr.Error(), rep.LastErrAt
	}
	if rep.Seeders >= 0 {
		ti.Seeders = &rep.Seeders
	}
	if rep.Leechers >= 0 {
		ti.Leechers = &rep.Leechers
	}
	l := rep.Latency
	ti.Latency = &TrackerLatency{Answers: l.Answers, Last: Duration(l.Last), P50: Duration(l.P50),
		P90: Duration(l.P90), Max: Duration(l.Max)}
	ti.OverduePackets = rep.Overdue
	ti.PeersTotal = rep.Peers
	ti.Peers = make([]string, len(rep.PeerList))
	for i, a := range rep.PeerList {
		ti.Peers[i] = a.String()
	}
}
