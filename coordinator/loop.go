package coordinator

import (
	"errors"
	"math"
	"reflect"
	"slices"
	"time"

	"flotilla/internal/loop"
	"flotilla/swarm"
	"flotilla/tracker"
)

// StatusInterval is how often a job's loop polls the sub-chief's status
// (reported as Progress) and checks the trackers' health and the nodes.
const StatusInterval = 250 * time.Millisecond

// IdleStatusInterval replaces StatusInterval once the job seeds without
// peers (swarm.Config.IdleStatusInterval, which also paces the sub-chief
// and the local swarm): a peer shows in Progress within two of them.
const IdleStatusInterval = 2 * time.Second

// run is the coordinator's main loop for one job (DESIGN point 6): it
// waits for tracker updates, membership changes, finished node dials and
// the sub-chief's completion, polls the sub-chief's status without
// blocking, and hands its events to the reader without ever waiting for
// one.
func (j *Job) run() {
	defer close(j.done)
	tick := loop.NewPacer(StatusInterval, IdleStatusInterval)
	defer tick.Stop()
	complete := j.dl.Complete()
	var last swarm.Status // the last Progress emitted
	var updates <-chan tracker.Update
	if j.ann != nil {
		updates = j.ann.Updates()
	}
	for {
		out, next := j.nextEvent()
		var dialed <-chan dialResult
		if j.link != nil {
			dialed = j.link.dialed
		}
		select {
		case <-j.closing:
			return
		case out <- next:
			j.queue[0] = nil
			j.queue = j.queue[1:]
		case f := <-j.cmds:
			f()
		case ev := <-j.members:
			if j.link != nil {
				j.link.memberEvent(ev)
			}
		case r := <-dialed:
			j.link.dialDone(r, j.dl)
		case u := <-updates:
			j.trackerUpdate(u)
		case pl := <-j.peerLists:
			j.c.log.Debug("tracker peers", "url", pl.url, "peers", len(pl.addrs))
			j.dl.AddPeers(pl.addrs)
		case <-complete:
			complete = nil
			j.completed()
		case now := <-tick.C():
			st := j.dl.Status()
			if st.Err != nil && !errors.Is(st.Err, swarm.ErrClosed) {
				j.emit(Failed{Err: st.Err})
				j.drain()
				return
			}
			if !sameStatus(last, st) {
				last = st
				j.emit(Progress{Status: st})
			}
			if w, ok := j.trackerWarning(now, st); ok {
				j.emit(w)
			}
			if complete != nil && st.Peers < j.demand.below {
				j.pokeDHT()
			}
			if j.ann != nil && j.demand.short(st.Peers, complete != nil) {
				j.ann.MorePeers()
			}
			if j.link != nil && complete != nil {
				j.link.tick(now, st)
			}
			tick.Ticked(complete == nil && st.Peers == 0 && st.DownRate < 1 && st.UpRate < 1)
			continue
		}
		tick.Wake()
	}
}

// sameStatus reports whether b tells nothing a reader of a would not
// know: a job that seeds without peers emits no Progress at all, so that
// a thousand of them cost their reader nothing. The snapshots' times are
// ignored and rates compared to the byte per second (a meter decays
// towards 0 for long after the last byte).
func sameStatus(a, b swarm.Status) bool {
	return reflect.DeepEqual(steady(a), steady(b))
}

// steady is st without what changes while nothing happens.
func steady(st swarm.Status) swarm.Status {
	st.Updated = time.Time{}
	st.DownRate, st.UpRate = math.Trunc(st.DownRate), math.Trunc(st.UpRate)
	st.Workers = slices.Clone(st.Workers)
	for i := range st.Workers {
		w := &st.Workers[i]
		w.Updated = time.Time{}
		w.DownRate, w.UpRate = math.Trunc(w.DownRate), math.Trunc(w.UpRate)
	}
	return st
}

// nextEvent returns the channel to send the oldest queued event on, or a
// nil channel when none is queued.
func (j *Job) nextEvent() (chan<- Event, Event) {
	if len(j.queue) == 0 {
		return nil, nil
	}
	return j.events, j.queue[0]
}

// emit queues an event for the reader. A Progress replaces one still
// queued right before it: the reader needs only the newest.
func (j *Job) emit(ev Event) {
	if _, ok := ev.(Progress); ok && len(j.queue) > 0 {
		if _, last := j.queue[len(j.queue)-1].(Progress); last {
			j.queue[len(j.queue)-1] = ev
			return
		}
	}
	j.queue = append(j.queue, ev)
}

// drain delivers the queued events after a failure, and nothing else,
// until the job is closed.
func (j *Job) drain() {
	for {
		out, next := j.nextEvent()
		select {
		case <-j.closing:
			return
		case out <- next:
			j.queue = j.queue[1:]
		case <-j.members:
		case f := <-j.cmds:
			f()
		}
	}
}

// completed tells the trackers, stops the nodes' jobs (a seeding job keeps
// them: each node seeds what it holds until the job is closed) and
// reports the final status.
func (j *Job) completed() {
	if j.ann != nil {
		j.ann.Completed()
	}
	st := j.dl.Status()
	if j.link != nil {
		if j.cfg.Seed {
			j.link.keepSeeding()
		} else {
			j.link.stopRemotes()
		}
	}
	j.emit(Completed{Status: st})
}

// trackerUpdate feeds the tracker health; the peers a tracker announced
// reach the sub-chief through its peer list (watchTrackers).
func (j *Job) trackerUpdate(u tracker.Update) {
	j.health.record(u, time.Now())
	if u.Kind == tracker.UpdateAnnounce {
		j.demand.answered()
	}
	log := j.c.log
	if u.Err != nil {
		log.Debug("tracker", "url", u.URL, "err", u.Err)
		return
	}
	if u.Response == nil {
		return
	}
	log.Debug("tracker answered", "url", u.URL, "event", u.Event, "peers", len(u.Response.Peers), "took", u.Took)
}

// trackerWarning returns a TrackersSilent event when one is due (see
// trackerHealth.warning). Jobs without trackers have none.
func (j *Job) trackerWarning(now time.Time, st swarm.Status) (TrackersSilent, bool) {
	if j.ann == nil {
		return TrackersSilent{}, false
	}
	return j.health.warning(now, st.Peers, j.cfg.Torrent.Tiers())
}
