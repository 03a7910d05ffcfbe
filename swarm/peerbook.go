package swarm

import (
	"container/list"
	"net/netip"
)

// Peers across swarms. The sub-chief spreads the peer addresses its
// trackers report over its workers so that our swarms do not all crowd
// the same peers (DESIGN "How data flows"). It keeps them in a peerBook,
// freshest first, with the workers each was given to:
//
//   - A new address, or one no live worker has (its workers left), goes to
//     exactly one worker, dealt round robin. An address a live worker
//     already has is not sent again (a tracker repeats most of its list at
//     every announce, and a worker keeps the addresses it was given).
//   - A worker that joins gets its share of the book at once —
//     ceil(known/(alive+expected)) addresses (expected: the workers
//     being started, Download.ExpectWorkers), at most MaxPeers, freshest first,
//     preferring those no live worker has, then those the fewest have —
//     instead of waiting for the next announce with no peers. These are
//     the only addresses given to more than one worker.
//   - When a worker goes, the addresses only it had are dealt to the
//     others.
//
// The book is bounded (maxKnownPeers); the stalest addresses go first.

// maxKnownPeers bounds the sub-chief's peer book.
const maxKnownPeers = 2048

// peerBook is a bounded record of peer addresses, freshest first, and of
// the worker slots each was given to. Passive: the sub-chief owns it.
type peerBook struct {
	max  int
	ll   *list.List // of *peerRec, freshest at the front
	byAP map[netip.AddrPort]*list.Element
	next int // round robin over the workers for new addresses (Deal)
}

type peerRec struct {
	addr  netip.AddrPort
	given uint64 // bit w: given to worker slot w
}

func newPeerBook(max int) *peerBook {
	return &peerBook{max: max, ll: list.New(), byAP: map[netip.AddrPort]*list.Element{}}
}

// Len is the number of addresses in the book.
func (b *peerBook) Len() int { return b.ll.Len() }

// Add records a as just reported (freshest) and returns its record; the
// stalest address beyond the bound is dropped.
func (b *peerBook) Add(a netip.AddrPort) *peerRec {
	if e, ok := b.byAP[a]; ok {
		b.ll.MoveToFront(e)
		return e.Value.(*peerRec)
	}
	r := &peerRec{addr: a}
	b.byAP[a] = b.ll.PushFront(r)
	for b.ll.Len() > b.max {
		old := b.ll.Back()
		delete(b.byAP, old.Value.(*peerRec).addr)
		b.ll.Remove(old)
	}
	return r
}

// Forget clears worker slot w from every record (the slot is reused).
func (b *peerBook) Forget(w int) {
	for e := b.ll.Front(); e != nil; e = e.Next() {
		e.Value.(*peerRec).given &^= 1 << w
	}
}

// Pick appends up to n records to dst: those held by the fewest of the
// workers in live first, the freshest first among equals.
func (b *peerBook) Pick(n int, live uint64, dst []*peerRec) []*peerRec {
	var byHolders [maxWorkers + 1][]*peerRec
	for e := b.ll.Front(); e != nil; e = e.Next() {
		r := e.Value.(*peerRec)
		c := popcount(r.given & live)
		byHolders[c] = append(byHolders[c], r)
	}
	for _, rs := range byHolders {
		for _, r := range rs {
			if n <= 0 {
				return dst
			}
			dst = append(dst, r)
			n--
		}
	}
	return dst
}

// Orphans appends the records no worker in live has, freshest first.
func (b *peerBook) Orphans(live uint64, dst []*peerRec) []*peerRec {
	for e := b.ll.Front(); e != nil; e = e.Next() {
		if r := e.Value.(*peerRec); r.given&live == 0 {
			dst = append(dst, r)
		}
	}
	return dst
}

// liveMask has a bit set for every live worker slot.
func liveMask(slots []*workerSlot) uint64 {
	var m uint64
	for _, s := range slots {
		if s.alive {
			m |= 1 << s.idx
		}
	}
	return m
}

// Deal gives each record no live worker has to one live worker, round
// robin, and sends each worker its part.
func (b *peerBook) Deal(recs []*peerRec, slots []*workerSlot) {
	var alive []*workerSlot
	for _, s := range slots {
		if s.alive {
			alive = append(alive, s)
		}
	}
	if len(alive) == 0 {
		return
	}
	live := liveMask(slots)
	parts := make([][]netip.AddrPort, len(alive))
	for _, r := range recs {
		if r.given&live != 0 {
			continue // a live worker has it (or it came twice)
		}
		k := b.next % len(alive)
		b.next++
		parts[k] = append(parts[k], r.addr)
		r.given |= 1 << alive[k].idx
	}
	for k, s := range alive {
		if len(parts[k]) > 0 {
			s.w.AddPeers(parts[k])
		}
	}
}

// Join gives a worker that just joined its share of the book, at most
// maxPeers addresses: the book over the workers alive and the expected
// ones still to come (Download.ExpectWorkers).
func (b *peerBook) Join(s *workerSlot, slots []*workerSlot, maxPeers, expected int) {
	if !s.alive || b.Len() == 0 {
		return
	}
	alive := popcount(liveMask(slots)) + expected
	share := min(maxPeers, (b.Len()+alive-1)/alive)
	recs := b.Pick(share, liveMask(slots)&^(1<<s.idx), nil)
	addrs := make([]netip.AddrPort, 0, len(recs))
	for _, r := range recs {
		r.given |= 1 << s.idx
		addrs = append(addrs, r.addr)
	}
	s.w.AddPeers(addrs)
}
