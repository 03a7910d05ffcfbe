package peerswarm

import (
	"cmp"
	"iter"
	"net/netip"
	"slices"
	"time"

	"flotilla/peerwire"
)

// peerTable is the connected peers, by key, with the admission caps: who
// may join (admit, evicting an idle incoming peer when there is no room),
// joining (add) and leaving (remove), and the outbound side of every peer
// (send, which never blocks: a full queue marks the table overfull for
// the owner to drop the peer). Passive; owned by the swarm's run
// goroutine. What a peer's leaving means to the rest of the swarm (picker,
// trust, candidates) is the Swarm's dropPeer.
type peerTable struct {
	maxPeers  int
	m         map[peerKey]*peer
	nextKey   peerKey // keys are never reused (the picker remembers sources)
	gen       uint32
	n         int  // connected peers
	nincoming int  // connected peers that dialed us
	overfull  bool // a peer's outbound queue is full (see send)
}

func newPeerTable(maxPeers int) *peerTable {
	return &peerTable{maxPeers: maxPeers, m: map[peerKey]*peer{}}
}

// get is the connected peer with key k, or nil.
func (t *peerTable) get(k peerKey) *peer { return t.m[k] }

// has reports whether p is (still) connected.
func (t *peerTable) has(p *peer) bool { return t.m[p.key] == p }

// all yields the connected peers; the loop body may remove peers.
func (t *peerTable) all() iter.Seq[*peer] {
	return func(yield func(*peer) bool) {
		for _, p := range t.m {
			if p != nil && !yield(p) {
				return
			}
		}
	}
}

// connectedTo reports whether a peer at a is connected: where we dialed
// it, where it came from, or, for a peer that dialed us, the address it
// listens on (BEP 10 "p", or the dial it made a duplicate of).
func (t *peerTable) connectedTo(a netip.AddrPort) bool {
	for p := range t.all() {
		if p.addr == a {
			return true
		}
		if r, ok := p.reachable(); ok && r == a {
			return true
		}
	}
	return false
}

// duplicateOf returns the connected peer an outgoing connection to nc
// duplicates (same peer ID), or nil.
func (t *peerTable) duplicateOf(nc newConn) *peer {
	for p := range t.all() {
		if p.id == nc.hs.PeerID {
			return p
		}
	}
	return nil
}

// admit says why a new connection may not join (a duplicate, over the
// caps), or nil. An incoming peer over the caps gets the slot of an idle
// incoming peer if there is one (makeRoom), which evict must remove.
func (t *peerTable) admit(nc newConn, now time.Time, evict func(*peer)) error {
	for p := range t.all() {
		if p.id == nc.hs.PeerID || p.addr == nc.addr {
			return errDuplicatePeer
		}
	}
	switch {
	case nc.outgoing && t.n >= t.maxPeers:
		return errTooManyPeers
	case !nc.outgoing && (t.nincoming >= maxIncoming(t.maxPeers) || t.n >= t.maxPeers) && !t.makeRoom(now, evict):
		return errTooManyPeers
	}
	return nil
}

// makeRoom is called for an incoming peer when incoming peers are at
// their quota or all peer slots are taken: it evicts the incoming peer
// silent the longest, if one has been silent for evictIdle and is
// neither serving us nor being served (unchoked and interested) and
// traded no block with us within evictTraded, and reports whether there
// is now room.
func (t *peerTable) makeRoom(now time.Time, evict func(*peer)) bool {
	var victim *peer
	var oldest int64
	for p := range t.all() {
		if p.outgoing || (!p.peerChoking && len(p.reqs) > 0) || now.Sub(p.lastBlock) < evictIdle ||
			(!p.amChoking && p.peerInterested) || (!p.lastPayload.IsZero() && now.Sub(p.lastPayload) < evictTraded) {
			continue // serving us, being served, or traded lately
		}
		last := p.h.lastRead.Load()
		if now.Sub(time.Unix(0, last)) < evictIdle {
			continue
		}
		if victim == nil || last < oldest {
			victim, oldest = p, last
		}
	}
	if victim == nil {
		return false
	}
	evict(victim)
	return true
}

// add puts an admitted connection in the table.
func (t *peerTable) add(nc newConn) *peer {
	key := t.nextKey
	t.nextKey++
	t.gen++
	h := &connHandle{key: key, gen: t.gen, c: nc.c, addr: nc.addr, quit: make(chan struct{})}
	h.out.wake = make(chan struct{}, 1)
	p := &peer{
		h: h, key: key, addr: nc.addr, id: nc.hs.PeerID,
		fast: nc.hs.SupportsFast(), ext: nc.hs.SupportsExtensions(), outgoing: nc.outgoing,
		encrypted: isRC4(nc.c),
		amChoking: true, peerChoking: true,
		reqs:      map[uint64]time.Time{},
		lastBlock: time.Now(),
	}
	p.hasFn = func(i int) bool {
		if !p.has(i) {
			return false
		}
		return !p.peerChoking || p.allowedFast[uint32(i)]
	}
	t.m[key] = p
	t.n++
	if !nc.outgoing {
		t.nincoming++
	}
	h.lastRead.Store(time.Now().UnixNano())
	return p
}

// remove takes p out of the table (its connection is closed by the caller).
func (t *peerTable) remove(p *peer) {
	delete(t.m, p.key)
	t.n--
	if !p.outgoing {
		t.nincoming--
	}
}

// send queues messages to p. If p's queue is full they are dropped and the
// table is marked overfull (the Swarm's dropOverfull drops p, from run or
// tick: send never drops a peer itself, so callers may loop over the
// table).
func (t *peerTable) send(p *peer, ms ...peerwire.Message) {
	if !p.h.out.push(ms...) {
		t.overfull = true
	}
}

// setMaxPeers changes the peer cap (and with it the incoming quota,
// maxIncoming) and returns the peers over the new caps, for the caller to
// drop: first incoming peers over the incoming quota, then any peers over
// the total, the least useful of each first (see lessUseful). Raising the
// cap drops nobody; the dialer and new incoming peers fill the room.
func (t *peerTable) setMaxPeers(n int) []*peer {
	t.maxPeers = n
	var in, all []*peer
	for p := range t.all() {
		all = append(all, p)
		if !p.outgoing {
			in = append(in, p)
		}
	}
	slices.SortFunc(in, lessUseful)
	var drop []*peer
	dropping := map[*peer]bool{}
	for i := 0; i < len(in)-maxIncoming(n); i++ {
		drop = append(drop, in[i])
		dropping[in[i]] = true
	}
	slices.SortFunc(all, lessUseful)
	excess := len(all) - len(drop) - n
	for _, p := range all {
		if excess <= 0 {
			break
		}
		if !dropping[p] {
			drop = append(drop, p)
			excess--
		}
	}
	return drop
}

// lessUseful orders peers from the least useful to keep to the most: by
// what they send us (payload rate), then by what we send them, then the
// longest silent first.
func lessUseful(a, b *peer) int {
	if c := cmp.Compare(a.down.Rate(), b.down.Rate()); c != 0 {
		return c
	}
	if c := cmp.Compare(a.up.Rate(), b.up.Rate()); c != 0 {
		return c
	}
	return cmp.Compare(a.h.lastRead.Load(), b.h.lastRead.Load())
}
