package tracker

import (
	"net/netip"
	"time"
)

// PeerEntry is one peer in a tracker's peer list.
type PeerEntry struct {
	Peer
	FirstSeen time.Time // when this address was first reported
	LastSeen  time.Time // when a tracker last reported it
}

// peerNode is an intrusive doubly linked list node: no boxing, one
// allocation per peer (80 bytes: times are kept as monotonic nanoseconds,
// see mono.go, so that a step of the system clock does not age peers).
type peerNode struct {
	prev, next *peerNode
	Peer
	first, last int64 // monoNanos
}

func (n *peerNode) entry() PeerEntry {
	return PeerEntry{Peer: n.Peer, FirstSeen: monoTime(n.first), LastSeen: monoTime(n.last)}
}

// peerList is the per-tracker peer list of DESIGN point 11: a passive data
// structure (no goroutines, no locks; its owner serialises access) made of a
// map for deduplication by address and a doubly linked list ordered by
// freshness, most recently reported first. Entries older than the TTL are
// expired and the list never holds more than its capacity: adding beyond it
// drops the stalest entries.
type peerList struct {
	max  int
	ttl  time.Duration
	m    map[netip.AddrPort]*peerNode
	root peerNode // sentinel: root.next is the freshest, root.prev the stalest
}

// newPeerList returns an empty list holding at most max peers, each for at
// most ttl after it was last reported (ttl <= 0: no expiry).
func newPeerList(max int, ttl time.Duration) *peerList {
	pl := &peerList{max: max, ttl: ttl}
	pl.root.next, pl.root.prev = &pl.root, &pl.root
	return pl
}

// SetTTL changes the expiry age (e.g. to twice a tracker's new interval).
func (pl *peerList) SetTTL(ttl time.Duration) { pl.ttl = ttl }

// Len returns the number of peers held.
func (pl *peerList) Len() int { return len(pl.m) }

func (pl *peerList) unlink(n *peerNode) {
	n.prev.next, n.next.prev = n.next, n.prev
	n.prev, n.next = nil, nil
}

func (pl *peerList) pushFront(n *peerNode) {
	n.prev, n.next = &pl.root, pl.root.next
	pl.root.next.prev = n
	pl.root.next = n
}

// Add records that a tracker reported peers at now. Known addresses move to
// the front (their id is updated if the tracker gave one); new ones are
// inserted there. Within one batch the tracker's order is kept, the first
// peer ending up freshest. It returns how many addresses were new.
func (pl *peerList) Add(now time.Time, peers []Peer) (added int) {
	if pl.max <= 0 {
		return 0
	}
	if pl.m == nil {
		pl.m = make(map[netip.AddrPort]*peerNode, min(len(peers), pl.max))
	}
	mnow := monoNanos(now)
	for i := len(peers) - 1; i >= 0; i-- {
		p := peers[i]
		if n, ok := pl.m[p.Addr]; ok {
			pl.unlink(n)
			n.last = mnow
			if p.ID != "" {
				n.ID = p.ID
			}
			pl.pushFront(n)
			continue
		}
		n := &peerNode{Peer: p, first: mnow, last: mnow}
		pl.m[p.Addr] = n
		pl.pushFront(n)
		added++
	}
	for len(pl.m) > pl.max {
		pl.remove(pl.root.prev)
	}
	return added
}

func (pl *peerList) remove(n *peerNode) {
	delete(pl.m, n.Addr)
	pl.unlink(n)
}

// Expire drops entries last reported ttl or more before now and returns how
// many it dropped. It walks from the stalest end only as far as needed.
func (pl *peerList) Expire(now time.Time) (dropped int) {
	if pl.ttl <= 0 {
		return 0
	}
	mnow := monoNanos(now)
	for n := pl.root.prev; n != &pl.root; n = pl.root.prev {
		if mnow-n.last < int64(pl.ttl) {
			break
		}
		pl.remove(n)
		dropped++
	}
	return dropped
}

// Remove drops one address (e.g. a peer the caller found dead).
func (pl *peerList) Remove(addr netip.AddrPort) bool {
	n, ok := pl.m[addr]
	if ok {
		pl.remove(n)
	}
	return ok
}

// Snapshot returns a copy of the entries, freshest first.
func (pl *peerList) Snapshot() []PeerEntry {
	out := make([]PeerEntry, 0, len(pl.m))
	for n := pl.root.next; n != &pl.root; n = n.next {
		out = append(out, n.entry())
	}
	return out
}
