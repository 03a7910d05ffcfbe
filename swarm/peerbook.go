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
//     being started, Download.ExpectWorkers), raised towards
//     minPeerShare with addresses fewer than maxJoinHolders workers
//     have when that leaves the expected workers their share of those,
//     at most MaxPeers, freshest first,
//     preferring those no live worker has, then those the fewest have —
//     instead of waiting for the next announce with no peers. These are
//     the only addresses given to more than one worker.
//   - When a worker goes, the addresses only it had are dealt to the
//     others.
//
// The book is bounded (maxKnownPeers); the stalest addresses go first.

// maxKnownPeers bounds the sub-chief's peer book.
const maxKnownPeers = 2048

// minPeerShare is the fewest addresses a joining worker is given when the
// book has enough not yet crowded (held by fewer than maxJoinHolders
// workers). A swarm with one or two peers idles whenever one chokes it:
// with 3 seeders and 3 hosts (4 addresses known, the coordinator's own
// among them) a node's share was 2, the coordinator and one seeder, and
// it idled 0.3 s when that seeder choked it, until its own announce's
// peers came a second after the start. The cap on holders keeps 8 hosts
// over 8 seeders at three connections per seeder at most (an aria2c
// seeder accepts three a second).
const (
	minPeerShare   = 3
	maxJoinHolders = 3
)

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

// spare is how many addresses beyond its share of them a joining worker
// may take, up to minPeerShare: connections to addresses held by fewer
// than maxJoinHolders of the workers in live, less the share of them
// this worker and the expected ones take.
func (b *peerBook) spare(live uint64, share, expected int) int {
	if share >= minPeerShare {
		return 0
	}
	room := 0
	for e := b.ll.Front(); e != nil; e = e.Next() {
		room += max(0, maxJoinHolders-popcount(e.Value.(*peerRec).given&live))
	}
	return max(0, min(minPeerShare-share, room-share*(expected+1)))
}

// Join gives a worker that just joined its share of the book, at most
// maxPeers addresses: the book over the workers alive and the expected
// ones still to come (Download.ExpectWorkers).
func (b *peerBook) Join(s *workerSlot, slots []*workerSlot, maxPeers, expected int) {
	if !s.alive || b.Len() == 0 {
		return
	}
	alive := popcount(liveMask(slots)) + expected
	others := liveMask(slots) &^ (1 << s.idx)
	share := min(maxPeers, (b.Len()+alive-1)/alive)
	recs := b.Pick(min(maxPeers, share+b.spare(others, share, expected)), others, nil)
	for k := share; k < len(recs); k++ { // beyond the share: only uncrowded ones
		if popcount(recs[k].given&others) >= maxJoinHolders {
			recs = recs[:k] // Pick orders by holders: the rest are as crowded
			break
		}
	}
	addrs := make([]netip.AddrPort, 0, len(recs))
	for _, r := range recs {
		r.given |= 1 << s.idx
		addrs = append(addrs, r.addr)
	}
	s.w.AddPeers(addrs)
}
