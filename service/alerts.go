package service

import (
	"fmt"
	"strings"
	"time"

	"flotilla/coordinator"
)

// Alert is something a job reported that a person should see: a tracker
// or a lease past the watchdog's deadline, silent trackers, a swarm node
// that failed or was quarantined, a failure or a completion.
type Alert struct {
	Seq     int64     `json:"seq"`
	Time    time.Time `json:"time"`
	Job     string    `json:"job,omitempty"`
	Level   string    `json:"level"` // "info", "warn" or "error"
	Message string    `json:"message"`
}

// maxAlerts is how many alerts the service keeps.
const maxAlerts = 500

// alertOf turns a job's event into an alert; ok is false for events that
// are not one (Progress).
func alertOf(ev coordinator.Event) (level, msg string, ok bool) {
	switch ev := ev.(type) {
	case coordinator.Completed:
		return "info", "download complete", true
	case coordinator.Failed:
		return "error", "failed: " + ev.Err.Error(), true
	case coordinator.TrackersSilent:
		var errs []string
		for _, e := range ev.Errors {
			errs = append(errs, e.URL+": "+e.Err.Error())
		}
		msg := fmt.Sprintf("no tracker has answered for %s and there are no peers", ev.For.Round(time.Second))
		if len(errs) > 0 {
			msg += " (" + strings.Join(errs, "; ") + ")"
		}
		return "warn", msg, true
	case coordinator.Overdue:
		if ev.Tracker != "" {
			return "warn", fmt.Sprintf("tracker %s: %s request overdue (waited %s)", ev.Tracker, ev.Kind, ev.Waited.Round(time.Millisecond)), true
		}
		return "warn", fmt.Sprintf("swarm %s delivered no piece of its lease in time (waited %s)", ev.Worker, ev.Waited.Round(time.Millisecond)), true
	case coordinator.NodeDialFailed:
		return "warn", fmt.Sprintf("swarm node %s (%s): %v", ev.Name, ev.Addr, ev.Err), true
	case coordinator.NodeQuarantined:
		return "error", fmt.Sprintf("swarm node %s (%s) quarantined: it delivered pieces that failed verification", ev.Name, ev.Identity), true
	case coordinator.NodeRefused:
		return "warn", fmt.Sprintf("swarm node %s (%s) not used: a node at its addresses was quarantined", ev.Name, ev.Identity), true
	}
	return "", "", false
}

// alertLog keeps the newest maxAlerts alerts; a passive value owned by
// Service.run.
type alertLog struct {
	list []Alert
	seq  int64 // the newest alert's number
}

func (l *alertLog) add(job, level, msg string) {
	l.seq++
	l.list = append(l.list, Alert{Seq: l.seq, Time: time.Now().UTC(), Job: job, Level: level, Message: msg})
	if len(l.list) > maxAlerts {
		l.list = l.list[len(l.list)-maxAlerts:]
	}
}

// Alerts returns the alerts after sequence number since, oldest first,
// and the number to ask from next.
func (s *Service) Alerts(since int64) ([]Alert, int64, error) {
	var out []Alert
	var next int64
	err := s.do(func() {
		for _, a := range s.alerts.list {
			if a.Seq > since {
				out = append(out, a)
			}
		}
		next = s.alerts.seq
	})
	if out == nil {
		out = []Alert{}
	}
	return out, next, err
}
