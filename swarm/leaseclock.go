package swarm

import (
	"fmt"
	"time"

	"flotilla/watchdog"
)

// Lease deadlines. A worker that holds pieces owes the sub-chief a piece
// within LeaseTimeout: its lease clock starts when it is given pieces
// while holding none and restarts at every piece it delivers; it stops
// when the worker holds nothing. A worker past its deadline has missed it:
// when another worker can take over, its whole lease returns to the pool
// (Revoke with force) and it is benched — given no pieces — for
// LeaseTimeout, doubling on consecutive misses, so that it is not handed
// the same pieces straight back.
//
// The deadline is per worker, not per piece, because that is the rule:
// a busy worker's lease may legitimately outlive LeaseTimeout piece by
// piece while it keeps delivering. The watchdog records the same deadline:
// each run of the clock is one LeaseKind packet, issued with IssueAt(due)
// and fulfilled by the delivery that restarts the clock (its latency is
// the time the worker took to deliver), or cancelled when the worker no
// longer holds anything. There is no extension at judgement time, so the
// ledger and the sub-chief never disagree, and a watchdog alert for a
// lease is always a real miss. A missed packet is not cancelled at once
// (the watchdog might not have looked yet, and the miss would go
// uncounted): it is cancelled when the bench ends, long after its alert,
// or fulfilled (late) if the worker delivers after all.
//
// The sub-chief, not the watchdog's alert, decides the return: alerts go
// to one consumer (the coordinator's main loop) for every kind of packet
// and are dropped when it lags, while a lease must never stay stuck; and
// the decision needs the sub-chief's state (whether another worker can
// take over, whether our own storage is throttling the worker).

// LeaseKind is the watchdog kind of lease packets. Their owner is the
// torrent's info-hash in hex, a space and the worker's name, so that an
// alert finds the download (and the worker) it belongs to.
const LeaseKind = "lease"

// maxBenchShift caps the bench at LeaseTimeout << maxBenchShift.
const maxBenchShift = 3

// syncLease runs worker s's lease clock while it holds pieces and stops it
// (cancelling its watchdog packet) when it holds none.
func (d *Download) syncLease(s *workerSlot, now time.Time) {
	if s.idx < 0 {
		return
	}
	holds := s.alive && !d.stopped && d.lb.Held(s.idx) > 0
	switch {
	case holds && s.due.IsZero():
		s.due = now.Add(d.cfg.LeaseTimeout)
		if d.cfg.Watchdog != nil {
			owner := fmt.Sprintf("%x %s", d.cfg.InfoHash, s.w.Name())
			s.ticket = d.cfg.Watchdog.IssueAt(LeaseKind, owner, s.due)
		}
	case !holds && !s.due.IsZero():
		s.stopLease(d.cfg.Watchdog)
	}
}

func (d *Download) syncLeases(now time.Time) {
	for _, s := range d.slots {
		d.syncLease(s, now)
	}
}

// stopLease stops the worker's lease clock and cancels its packets.
func (s *workerSlot) stopLease(wd *watchdog.Watchdog) {
	endPacket(wd, &s.ticket, false)
	endPacket(wd, &s.missed, false)
	s.due = time.Time{}
}

// leaseDelivered records that the worker delivered a piece: its packet
// (or a missed one) is fulfilled, a bench ends, and the clock restarts at
// the next syncLease if it still holds pieces.
func (s *workerSlot) leaseDelivered(wd *watchdog.Watchdog) {
	endPacket(wd, &s.ticket, true)
	endPacket(wd, &s.missed, true)
	s.due = time.Time{}
	s.misses, s.benched = 0, false
}

// endPacket fulfils or cancels the watchdog packet *t, if any, and clears
// it (a packet exists only when there is a watchdog).
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

// checkLeases returns the lease of every worker past its deadline when
// another worker can take the pieces, benches it, and ends benches that
// are over.
func (d *Download) checkLeases(now time.Time) {
	for _, s := range d.slots {
		if s.benched && !now.Before(s.benchEnd) {
			s.benched = false
			endPacket(d.cfg.Watchdog, &s.missed, false) // alerted long ago
		}
	}
	for _, s := range d.slots {
		if !s.alive || s.idx < 0 || s.due.IsZero() || now.Before(s.due) {
			continue
		}
		if s.unreleased > 0 {
			continue // our storage holds back its pieces: we are late, not it
		}
		if !d.canTakeOver(s, now) {
			continue // nobody else to give them to; the watchdog has alerted
		}
		held := d.lb.HeldBy(s.idx, nil)
		s.misses++
		s.benched, s.benchEnd = true, now.Add(d.cfg.LeaseTimeout<<min(s.misses-1, maxBenchShift))
		d.log.Warn("lease deadline missed; returning the lease to the pool", "worker", s.w.Name(),
			"pieces", len(held), "misses", s.misses, "benched", s.benchEnd.Sub(now))
		if s.ticket.ID != 0 {
			d.cfg.Watchdog.Annotate(s.ticket, fmt.Sprintf("missed: %d pieces returned to the pool", len(held)))
		}
		endPacket(d.cfg.Watchdog, &s.missed, false) // an older miss, alerted long ago
		s.missed, s.ticket, s.due = s.ticket, watchdog.Ticket{}, time.Time{}
		d.lb.Return(s.idx, held)
		s.w.Revoke(held, true)
	}
}

// canTakeOver reports whether a worker other than s could take its lease:
// one that is alive, not benched and not past its own deadline.
func (d *Download) canTakeOver(s *workerSlot, now time.Time) bool {
	for _, o := range d.slots {
		if o != s && o.working() && (o.due.IsZero() || now.Before(o.due)) {
			return true
		}
	}
	return false
}
