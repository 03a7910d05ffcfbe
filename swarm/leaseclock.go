package swarm

import (
	"fmt"
	"time"

	"flotilla/watchdog"
)

// Lease deadlines. A worker that holds pieces owes the sub-chief a piece
// within LeaseTimeout. The deadline is a watchdog packet and the watchdog
// is its only clock (DESIGN point 2): a worker given pieces while holding
// none gets a LeaseKind packet due in LeaseTimeout; the piece it delivers
// fulfils it (its latency is the time the worker took) and the next one
// starts at once if it still holds pieces; it is cancelled when the worker
// holds nothing. The sub-chief keeps no deadline of its own: a worker has
// missed its lease when the watchdog reports its packet overdue.
//
// The watchdog's alert for a lease packet reaches the sub-chief
// (LeaseAlert: the coordinator routes the shared watchdog's alerts to the
// download that owns the packet; a Download built without a watchdog
// starts a private one and reads its alerts itself). The alert is only a
// wake-up: the Alerts channel has one reader and drops alerts when it
// lags, while a lease must never stay stuck. On an alert, and on every
// StatusInterval tick, checkLeases asks the watchdog which of its workers'
// packets are overdue (watchdog.Overdue, answered from the ledger on the
// watchdog's clock), so a dropped alert is recovered by the next alert or
// tick, never against a second clock. The decision stays here, on the
// sub-chief's loop, because it needs the sub-chief's state: when another
// worker can take over, an overdue worker's whole lease returns to the
// pool (Revoke with force) and it is benched — given no pieces — for
// LeaseTimeout, doubling on consecutive misses up to maxBenchShift, so
// that it is not handed the same pieces straight back; while our own
// storage still holds a piece it delivered (it is throttled by us, not
// late) or nobody can take over, it keeps its lease and the question is
// asked again at the next tick.
//
// The deadline is per worker, not per piece, because that is the rule: a
// busy worker's lease may legitimately outlive LeaseTimeout piece by
// piece while it keeps delivering. There is no extension at judgement
// time, so a lease alert is always a real miss. A missed packet is not
// cancelled at once: it is cancelled when the bench ends, long after its
// alert, or fulfilled (late) if the worker delivers after all.

// LeaseKind is the watchdog kind of lease packets. Their owner is the
// torrent's info-hash in hex, a space and the worker's name, so that an
// alert finds the download (and the worker) it belongs to.
const LeaseKind = "lease"

// maxBenchShift caps the bench at LeaseTimeout << maxBenchShift.
const maxBenchShift = 3

// LeaseAlert hands the sub-chief a watchdog alert for one of its lease
// packets; whoever reads Config.Watchdog's alerts routes them here. It
// wakes the sub-chief, which asks the watchdog at once which of its
// leases are overdue and acts on them; other kinds are ignored. It never
// blocks.
func (d *Download) LeaseAlert(a watchdog.Alert) {
	if a.Packet.Kind != LeaseKind {
		return
	}
	d.loop.Post(func() { d.checkLeases(time.Now()) })
}

// privateWatchdog is the lease clock of a Download built without
// Config.Watchdog: a small watchdog whose alerts only the Download reads
// (at most two packets per worker: its lease and a missed one).
func privateWatchdog() (*watchdog.Watchdog, error) {
	c := watchdog.DefaultConfig()
	c.AlertBuffer, c.MaxPending, c.MaxQueued, c.Shards = 8, 4*maxWorkers, 1024, 1
	c.History, c.MaxKinds, c.OverdueRetention = 0, 1, 0
	wd, err := watchdog.New(c)
	if err != nil {
		return nil, fmt.Errorf("swarm: lease watchdog: %w", err)
	}
	return wd, nil
}

// syncLease starts worker s's lease packet when it holds pieces and has
// none, and ends it (with a missed one) when it holds nothing.
func (d *Download) syncLease(s *workerSlot) {
	if s.idx < 0 {
		return
	}
	holds := s.alive && !d.stopped && d.lb.Held(s.idx) > 0
	switch {
	case holds && s.ticket.ID == 0:
		owner := fmt.Sprintf("%x %s", d.cfg.InfoHash, s.w.Name())
		s.ticket = d.wd.Issue(LeaseKind, owner, d.cfg.LeaseTimeout)
	case !holds && s.ticket.ID != 0:
		s.stopLease(d.wd)
	}
}

func (d *Download) syncLeases() {
	for _, s := range d.slots {
		d.syncLease(s)
	}
}

// stopLease cancels the worker's lease packets.
func (s *workerSlot) stopLease(wd *watchdog.Watchdog) {
	endPacket(wd, &s.ticket, false)
	endPacket(wd, &s.missed, false)
}

// leaseDelivered records that the worker delivered a piece: its packet
// (or a missed one) is fulfilled, a bench ends, and the next packet starts
// at the next syncLease if it still holds pieces.
func (s *workerSlot) leaseDelivered(wd *watchdog.Watchdog) {
	endPacket(wd, &s.ticket, true)
	endPacket(wd, &s.missed, true)
	s.misses, s.benched = 0, false
}

// endPacket fulfils or cancels the watchdog packet *t, if any, and clears
// it.
func endPacket(wd *watchdog.Watchdog, t *watchdog.Ticket, fulfilled bool) {
	if t.ID == 0 {
		return
	}
	if fulfilled {
		wd.Fulfil(*t)
	} else {
		wd.Cancel(*t)
	}
	*t = watchdog.Ticket{}
}

// checkLeases ends benches that are over, asks the watchdog which
// workers' lease packets are overdue, and returns the lease of each such
// worker when another worker can take the pieces, benching it; the
// returned pieces are dealt out at once. It runs on every tick and on
// every lease alert.
func (d *Download) checkLeases(now time.Time) {
	if d.stopped {
		return
	}
	for _, s := range d.slots {
		if s.benched && !now.Before(s.benchEnd) {
			s.benched = false
			endPacket(d.wd, &s.missed, false) // alerted long ago
		}
	}
	late := overdueLeases(d.wd, d.slots)
	returned := false
	for k, s := range d.slots {
		if !late[k] || !s.alive || s.idx < 0 {
			continue
		}
		if s.unreleased > 0 {
			continue // our storage holds back its pieces: we are late, not it
		}
		if !canTakeOver(d.slots, late, k) {
			continue // nobody else to give them to; asked again next tick
		}
		held := d.lb.HeldBy(s.idx, nil)
		s.misses++
		s.benched, s.benchEnd = true, now.Add(d.cfg.LeaseTimeout<<min(s.misses-1, maxBenchShift))
		d.log.Warn("lease deadline missed; returning the lease to the pool", "worker", s.w.Name(),
			"pieces", len(held), "misses", s.misses, "benched", s.benchEnd.Sub(now))
		d.wd.Annotate(s.ticket, fmt.Sprintf("missed: %d pieces returned to the pool", len(held)))
		endPacket(d.wd, &s.missed, false) // an older miss, alerted long ago
		s.missed, s.ticket = s.ticket, watchdog.Ticket{}
		d.returned.Missed += d.lb.Return(s.idx, held)
		s.w.Revoke(held, true)
		returned = true
	}
	if returned {
		d.rebalance(now, true) // deal the returned pieces out at once
	}
}

// overdueLeases asks the watchdog which workers' lease packets are
// overdue: late[k] for slots[k]. All false when no worker holds a lease
// or the watchdog is closed (the process is shutting down).
func overdueLeases(wd *watchdog.Watchdog, slots []*workerSlot) []bool {
	ts := make([]watchdog.Ticket, len(slots))
	some := false
	for k, s := range slots {
		ts[k] = s.ticket
		some = some || s.ticket.ID != 0
	}
	if some {
		if late, err := wd.Overdue(ts); err == nil {
			return late
		}
	}
	return make([]bool, len(slots))
}

// canTakeOver reports whether a worker other than slots[k] could take its
// lease: one that is alive, not benched and not overdue itself.
func canTakeOver(slots []*workerSlot, late []bool, k int) bool {
	for j, o := range slots {
		if j != k && o.working() && !late[j] {
			return true
		}
	}
	return false
}
