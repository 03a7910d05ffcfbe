package swarm

import (
	"cmp"
	"slices"
	"time"
)

// Lease balancing across workers. Leases are sized to a worker's rate but
// capped by its share of the pieces left, so that no worker hoards what
// another will have to take back. Once the pool is empty, a worker running
// dry steals: the pieces a worker has not started are asked back (Revoke
// without force, which costs no bytes), and what it keeps is marked
// started. Only started pieces are duplicated (end game across workers),
// by at most maxLeaseHolders workers (duplicating leases wholesale made
// several workers fetch the same unstarted pieces), except that a worker
// left with nothing joins, one piece at a time, a started piece whose
// holders are all slower than it: a slow node's last pieces then do not
// hold up the end while a faster swarm idles.

// rebalance refills every worker (those running dry first) and, once the
// pool is empty and a worker runs dry, steals unstarted pieces back from
// the others: a worker over its share is asked (Revoke without force) for
// the pieces beyond it or, when none is, every worker for those it has
// not started (a probe); what a worker keeps is marked started, which
// makes it eligible for duplication.
func (d *Download) rebalance(now time.Time, force bool) {
	if d.stopped {
		return
	}
	var dry []*workerSlot
	for _, s := range d.slots {
		if s.working() && d.lb.Held(s.idx) < lowWater(d.target(s)) {
			dry = append(dry, s)
		}
	}
	slices.SortFunc(dry, func(a, b *workerSlot) int { return cmp.Compare(b.rate.Rate(), a.rate.Rate()) })
	for _, s := range dry {
		d.refill(s, now, force)
	}
	for _, s := range d.slots {
		d.refill(s, now, force)
	}
	for _, s := range d.slots {
		if len(s.ask) > 0 && now.Sub(s.askAt) >= stealWait(d.cfg) {
			s.settleAsk(d.lb)
		}
	}
	if !d.lb.PoolEmpty() {
		return
	}
	starving := false
	for _, s := range d.slots {
		if s.working() && d.lb.Held(s.idx) < lowWater(d.target(s)) {
			starving = true
		}
	}
	if !starving {
		return
	}
	asked := false
	for _, probe := range []bool{false, true} {
		for _, s := range d.slots {
			if ask := d.stealAsk(s, now, probe); len(ask) > 0 {
				asked = true
				s.ask, s.askAt = append(s.ask[:0], ask...), now
				d.log.Debug("stealing unstarted pieces", "from", s.w.Name(), "asked", len(ask), "probe", probe, "left", d.lb.Left())
				s.w.Revoke(ask, false)
			}
		}
		if asked {
			return
		}
	}
}

// stealAsk lists the pieces to ask worker s to give back: when it holds
// more than its share, those beyond it not known to be started; when
// probe is set (nobody is over its share), all those not known to be
// started, unless it was assigned pieces less than stealWait ago.
func (d *Download) stealAsk(s *workerSlot, now time.Time, probe bool) []int {
	if !s.alive || len(s.ask) > 0 {
		return nil
	}
	held, sh := d.lb.Held(s.idx), rateShare(s, d.slots, d.lb.Left())
	if held == 0 {
		return nil
	}
	if held <= sh && (!probe || now.Sub(s.assignedAt) < stealWait(d.cfg)) {
		return nil
	}
	var unknown []int
	started := 0
	for _, i := range d.lb.HeldBy(s.idx, nil) {
		if d.lb.Started(s.idx, i) {
			started++
		} else {
			unknown = append(unknown, i)
		}
	}
	keep := 0
	if held > sh {
		keep = max(0, sh-started)
	}
	if keep < len(unknown) {
		return unknown[keep:]
	}
	return nil
}

// slowerThan is the mask of the workers whose measured rate is below
// s's (s without a rate sample is faster than nobody).
func slowerThan(s *workerSlot, slots []*workerSlot) uint64 {
	r := s.rate.Rate()
	var m uint64
	for _, o := range slots {
		if o != s && o.idx >= 0 && o.alive && o.rate.Rate() < r {
			m |= 1 << o.idx
		}
	}
	return m
}

// maxLeaseHolders bounds how many workers download one piece at once in
// end game across workers: each extra holder may waste a whole piece.
const maxLeaseHolders = 2

// lowWater is the lease size below which a worker is running dry.
func lowWater(target int) int { return max(2, target/4) }

// target is worker s's lease size: LeaseHorizon of work at its measured
// rate (at least MinLease), capped by its rate-weighted share of the
// pieces left. A worker without a rate sample counts as the mean.
func (d *Download) target(s *workerSlot) int {
	t := leaseTarget(s.rate.Rate(), d.cfg.Info.PieceLength, d.cfg.LeaseHorizon.Seconds(), d.cfg.MinLease, d.n)
	return min(t, max(rateShare(s, d.slots, d.lb.Left()), 2))
}

// rateShare is worker s's share of the left pieces, weighted by the
// working workers' measured rates (one without a sample counts as the
// mean).
func rateShare(s *workerSlot, slots []*workerSlot, left int) int {
	var sum float64
	alive, measured := 0, 0
	for _, o := range slots {
		if o.working() {
			alive++
			if r := o.rate.Rate(); r > 0 {
				sum += r
				measured++
			}
		}
	}
	if alive == 0 {
		return left
	}
	if measured == 0 {
		return (left + alive - 1) / alive
	}
	mean := sum / float64(measured)
	r := s.rate.Rate()
	if r <= 0 {
		r = mean
	}
	total := sum + mean*float64(alive-measured)
	return int(float64(left)*r/total) + 1
}

// working reports whether the worker takes pieces: alive, not refused,
// not benched for a missed lease deadline (leaseclock.go), not leaving.
func (s *workerSlot) working() bool { return s.alive && s.idx >= 0 && !s.benched && !s.leaving }

// stealWait is how long a steal may go unanswered before the pieces the
// worker still holds count as started: a worker's answer names what it
// keeps (WorkerEvent.Kept), but a node sends none when every asked piece
// is already delivered (and a node before Kept none when it gives
// nothing back), and an answer may be lost with its session.
func stealWait(cfg Config) time.Duration {
	return max(2*cfg.StatusInterval, 200*time.Millisecond)
}

// answered settles a pending steal when a revocation answers it (it names
// one of the asked pieces, given back or kept): what the worker kept, it
// has started. An answer that gives nothing back names the pieces kept
// (WorkerEvent.Kept), so the idle workers may copy them at once instead
// of waiting out stealWait.
func (s *workerSlot) answered(lb *leaseBook, back, kept []int) {
	asked := func(i int) bool { return slices.Contains(s.ask, i) }
	if len(s.ask) > 0 && (slices.ContainsFunc(back, asked) || slices.ContainsFunc(kept, asked)) {
		s.settleAsk(lb)
	}
}

// settleAsk ends a pending steal: the asked pieces the worker still
// holds count as started.
func (s *workerSlot) settleAsk(lb *leaseBook) {
	for _, i := range s.ask {
		if lb.Holds(s.idx, i) && !lb.IsDone(i) {
			lb.MarkStarted(s.idx, i)
		}
	}
	s.ask, s.askAt = s.ask[:0], time.Time{}
}

// awaitSteal reports whether a worker running dry should wait for a
// pending steal rather than duplicate a started piece: the pieces asked
// back return to the pool within a round trip. In the 8-host run the
// coordinator's swarm duplicated 12 started pieces with 701 left (12 MiB
// of its WAN) while the steal that refilled the pool was in flight. Near
// the end (a few pieces per worker left) duplication goes on at once: a
// steal is still answered a round trip later, or by an older node that
// gives nothing back only after stealWait.
func (d *Download) awaitSteal() bool {
	if d.lb.Left() <= 4*len(d.slots) {
		return false
	}
	for _, s := range d.slots {
		if s.alive && len(s.ask) > 0 {
			return true
		}
	}
	return false
}
