package dht

import (
	"net/netip"
	"slices"
)

// lookup is the state of one iterative get_peers or find_node lookup
// (BEP 5): it keeps the candidates closest to the target, queries up to
// alpha of them at a time closest first, and ends when the k closest
// candidates that did not fail have all answered, nothing is left to ask,
// or it has sent maxQueries queries. A passive value driven by the Node's
// loop: next says whom to ask, answered/failed record the outcome.
type lookup struct {
	self       ID // never a candidate: others list us among the closest
	target     ID
	getPeers   bool
	k, alpha   int
	maxQueries int
	cands      []*cand // sorted by distance; unknown ids (bootstrap) first
	seen       map[netip.AddrPort]bool
	inflight   int
	queries    int
	peers      map[netip.AddrPort]bool
}

type candState uint8

const (
	fresh candState = iota
	asked
	answered
	failedState
)

type cand struct {
	nodeInfo
	known bool // false for a bootstrap address whose id we do not know yet
	state candState
	token []byte
}

// maxCands bounds the candidates a lookup keeps.
func (l *lookup) maxCands() int { return 8 * l.k }

func newLookup(self, target ID, getPeers bool, k, alpha, maxQueries int) *lookup {
	return &lookup{self: self, target: target, getPeers: getPeers, k: k, alpha: alpha, maxQueries: maxQueries,
		seen: make(map[netip.AddrPort]bool), peers: make(map[netip.AddrPort]bool)}
}

// add offers candidates; known says whether their ids are real.
func (l *lookup) add(ns []nodeInfo, known bool) {
	for _, n := range ns {
		if !n.Addr.IsValid() || n.Addr.Port() == 0 || l.seen[n.Addr] || (known && n.ID == l.self) {
			continue
		}
		l.seen[n.Addr] = true
		l.cands = append(l.cands, &cand{nodeInfo: n, known: known})
	}
	slices.SortStableFunc(l.cands, func(a, b *cand) int {
		switch {
		case a.known != b.known:
			if !a.known {
				return -1
			}
			return 1
		case !a.known:
			return 0
		}
		return compareIDs(xor(l.target, a.ID), xor(l.target, b.ID))
	})
	// Drop the farthest fresh candidates beyond the bound; ones in flight
	// or answered stay so their outcome finds them.
	for i := len(l.cands) - 1; i >= 0 && len(l.cands) > l.maxCands(); i-- {
		if l.cands[i].state == fresh {
			l.cands = slices.Delete(l.cands, i, i+1)
		}
	}
}

// next returns the candidates to query now, marking them asked.
func (l *lookup) next() []*cand {
	var out []*cand
	live := 0 // candidates within the k closest that did not fail
	for _, c := range l.cands {
		if l.inflight >= l.alpha || l.queries >= l.maxQueries || live >= l.k {
			break
		}
		if c.state == failedState {
			continue
		}
		live++
		if c.state == fresh {
			c.state = asked
			l.inflight++
			l.queries++
			out = append(out, c)
		}
	}
	return out
}

func (l *lookup) find(addr netip.AddrPort) *cand {
	for _, c := range l.cands {
		if c.Addr == addr {
			return c
		}
	}
	return nil
}

// answered records c's response: its id, token, nodes and peers. It
// returns the peers not seen before.
func (l *lookup) answered(addr netip.AddrPort, m *msg) []netip.AddrPort {
	c := l.find(addr)
	if c == nil || c.state != asked {
		return nil
	}
	l.inflight--
	c.state, c.ID, c.known, c.token = answered, m.ID, true, slices.Clone(m.Token)
	l.add(m.Nodes, true)
	var fresh []netip.AddrPort
	for _, p := range m.Values {
		if p.Port() != 0 && !l.peers[p] && len(l.peers) < 4096 {
			l.peers[p] = true
			fresh = append(fresh, p)
		}
	}
	return fresh
}

// failed records that the query to addr failed (timeout or error).
func (l *lookup) failed(addr netip.AddrPort) {
	if c := l.find(addr); c != nil && c.state == asked {
		l.inflight--
		c.state = failedState
	}
}

// done reports whether the lookup is over: nothing in flight and nothing
// more to ask.
func (l *lookup) done() bool {
	if l.inflight > 0 {
		return false
	}
	if l.queries >= l.maxQueries {
		return true
	}
	live := 0
	for _, c := range l.cands {
		if c.state == failedState {
			continue
		}
		if c.state == fresh {
			return false
		}
		if live++; live >= l.k {
			break
		}
	}
	return true
}

// announceTo returns the k closest nodes that answered with a token.
func (l *lookup) announceTo() []*cand {
	var out []*cand
	for _, c := range l.cands {
		if c.state == answered && len(c.token) > 0 && len(out) < l.k {
			out = append(out, c)
		}
	}
	return out
}
