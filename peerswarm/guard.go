package peerswarm

import (
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync/atomic"
)

// addrSet is a set of addresses its owner publishes whole: each change
// stores a new copy, which any goroutine reads without a lock.
type addrSet struct {
	m atomic.Pointer[map[netip.Addr]struct{}]
}

func newAddrSet() *addrSet {
	s := &addrSet{}
	s.m.Store(&map[netip.Addr]struct{}{})
	return s
}

// has reports whether a (unmapped) is in the set. Any goroutine.
func (s *addrSet) has(a netip.Addr) bool {
	_, ok := (*s.m.Load())[a.Unmap()]
	return ok
}

// guard is who the swarm trusts: the trust book (strikes for failed
// pieces), the ban list and the distrusted set, both published for other
// goroutines (the wire checks the ban list on dial and accept; Banned and
// Distrusted answer from anywhere), and the addresses of departed peers
// whose blocks may still be in pending pieces, so that a piece failing
// after its contributors left still names them. Owned by the swarm's run
// goroutine (except the published sets). It decides; the Swarm enforces:
// it drops banned peers (ban) and the requester restricts distrusted ones
// in the picker (setDistrust).
type guard struct {
	log       *slog.Logger
	trust     *trustBook
	bans      *addrSet // shared with the wire
	distrusts *addrSet // published copy of trust's distrusted set
	gone      map[peerKey]netip.Addr
}

func newGuard(maxStrikes int, log *slog.Logger) *guard {
	return &guard{log: log, trust: newTrustBook(maxStrikes), bans: newAddrSet(), distrusts: newAddrSet(),
		gone: map[peerKey]netip.Addr{}}
}

// ban bans addresses (the caller drops their connections).
func (g *guard) ban(addrs ...netip.Addr) {
	m := maps.Clone(*g.bans.m.Load())
	for _, a := range addrs {
		a = a.Unmap()
		g.trust.Ban(a)
		m[a] = struct{}{}
		g.log.Warn("banned peer", "addr", a)
	}
	g.bans.m.Store(&m)
	g.publishDistrust()
}

// distrusted reports whether a is distrusted, by the trust book.
func (g *guard) distrusted(a netip.Addr) bool { return g.trust.Distrusted(a) }

// hashFailed gives the distinct contributors of a failed piece a strike
// (see trustBook.HashFailed) and returns those just distrusted and those
// just banned, for the caller to enforce (setDistrust, ban).
func (g *guard) hashFailed(distinct []netip.Addr) (distrusted, banned []netip.Addr) {
	distrusted, banned = g.trust.HashFailed(distinct, nil, nil)
	if len(distrusted) > 0 {
		g.log.Info("distrusted peers", "addrs", distrusted)
		g.publishDistrust()
	}
	return distrusted, banned
}

// absolve takes back a strike from each distinct contributor in from that
// is not guilty, and returns those left with none: trusted again.
func (g *guard) absolve(from, guilty []netip.Addr) []netip.Addr {
	var seen, trusted []netip.Addr
	for _, a := range from {
		if !a.IsValid() || slices.Contains(guilty, a) || slices.Contains(seen, a) {
			continue
		}
		seen = append(seen, a)
		if g.trust.Absolve(a) {
			trusted = append(trusted, a)
		}
	}
	if len(trusted) > 0 {
		g.log.Info("peers trusted again", "addrs", trusted)
		g.publishDistrust()
	}
	return trusted
}

func (g *guard) publishDistrust() {
	m := map[netip.Addr]struct{}{}
	for a := range g.trust.strikes {
		if g.trust.Distrusted(a) {
			m[a] = struct{}{}
		}
	}
	g.distrusts.m.Store(&m)
}

// left remembers the address of a departed peer.
func (g *guard) left(k peerKey, a netip.Addr) { g.gone[k] = a.Unmap() }

// sources names the contributors of a failed piece: from[b] is the address
// of block b's source (connected in t, or departed; invalid if unknown),
// distinct the addresses once each.
func (g *guard) sources(srcs []peerKey, t *peerTable) (from, distinct []netip.Addr) {
	from = make([]netip.Addr, len(srcs))
	for b, k := range srcs {
		var a netip.Addr
		if p := t.get(k); p != nil {
			a = p.addr.Addr().Unmap()
		} else if ga, ok := g.gone[k]; ok {
			a = ga
		} else {
			continue
		}
		from[b] = a
		if !slices.Contains(distinct, a) {
			distinct = append(distinct, a)
		}
	}
	return from, distinct
}

// pruneGone forgets departed peers no block pending in pk came from.
func (g *guard) pruneGone(pk *Picker) {
	if len(g.gone) < 256 {
		return
	}
	used := map[peerKey]bool{}
	for _, ap := range pk.active {
		if ap != nil {
			for _, b := range ap.blocks {
				used[b.from] = true
			}
		}
	}
	for k := range g.gone {
		if !used[k] {
			delete(g.gone, k)
		}
	}
}

// Banned reports whether an address is banned (for tests and status).
// Any goroutine.
func (s *Swarm) Banned(a netip.Addr) bool { return s.guard.bans.has(a) }

// Distrusted reports whether an address is distrusted: it contributed to
// a failed piece and is not banned (for tests and status). Any goroutine.
func (s *Swarm) Distrusted(a netip.Addr) bool { return s.guard.distrusts.has(a) }

// ban bans addresses and drops their connections.
func (s *Swarm) ban(addrs ...netip.Addr) {
	s.guard.ban(addrs...)
	for p := range s.peers.all() {
		if s.guard.bans.has(p.addr.Addr()) {
			s.dropPeer(p, ErrBanned)
		}
	}
}
