package main

import (
	"fmt"
	"time"

	"flotilla/coordinator"
	"flotilla/swarm"
	"flotilla/tracker"
)

// overdueLine is the one-line report of an Overdue event: what is late,
// by how much, and what Flotilla does about it.
func overdueLine(o coordinator.Overdue) string {
	waited, late := roundLate(o.Waited), roundLate(o.Late)
	if o.Kind == swarm.LeaseKind {
		who := "the local peer swarm"
		if o.Node {
			who = "swarm node " + o.Worker
		} else if o.Worker != "local" {
			who = "worker " + o.Worker
		}
		return fmt.Sprintf("overdue: %s delivered no piece for %s, %s past its lease deadline; "+
			"its pieces go back to the pool if another worker can take them", who, waited, late)
	}
	what := "its announce"
	switch o.Kind {
	case tracker.KindConnect:
		what = "its connect request"
	case tracker.KindScrape:
		what = "its scrape request"
	case tracker.KindSchedule:
		return fmt.Sprintf("overdue: tracker %s: the announce due %s ago has not been sent; "+
			"marked slow, still trying", o.Tracker, late)
	}
	return fmt.Sprintf("overdue: tracker %s has not answered %s for %s, %s past its deadline; "+
		"marked slow, still retrying", o.Tracker, what, waited, late)
}

// roundLate rounds a delay for display: to the second from 10 s on, to
// the tenth of a second below.
func roundLate(d time.Duration) time.Duration {
	if d >= 10*time.Second {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}
