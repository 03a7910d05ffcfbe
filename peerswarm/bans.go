package peerswarm

import (
	"maps"
	"net/netip"
	"slices"
)

func (w *wire) isBanned(a netip.Addr) bool {
	_, ok := (*w.bans.Load())[a.Unmap()]
	return ok
}

// Banned reports whether an address is banned (for tests and status).
func (s *Swarm) Banned(a netip.Addr) bool { return s.wire.isBanned(a) }

// ban bans addresses and drops their connections.
func (s *Swarm) ban(addrs ...netip.Addr) {
	m := maps.Clone(*s.wire.bans.Load())
	for _, a := range addrs {
		a = a.Unmap()
		s.trust.Ban(a)
		m[a] = struct{}{}
		s.log.Warn("banned peer", "addr", a)
	}
	s.wire.bans.Store(&m)
	s.publishDistrust()
	for p := range s.peers.all() {
		if s.wire.isBanned(p.addr.Addr()) {
			s.dropPeer(p, ErrBanned)
		}
	}
}

// setDistrust distrusts (or trusts again) addresses: the picker restricts
// (or frees) their connected peers, and the published set is renewed.
// Runs once per change of trust, O(peers).
func (s *Swarm) setDistrust(addrs []netip.Addr, distrust bool) {
	for p := range s.peers.all() {
		if p == nil || !slices.Contains(addrs, p.addr.Addr().Unmap()) {
			continue
		}
		if distrust {
			s.picker.Distrust(p.key)
		} else {
			s.picker.Trust(p.key)
		}
	}
	s.publishDistrust()
}

func (s *Swarm) publishDistrust() {
	m := map[netip.Addr]struct{}{}
	for a := range s.trust.strikes {
		if s.trust.Distrusted(a) {
			m[a] = struct{}{}
		}
	}
	s.distrusts.Store(&m)
}

// Distrusted reports whether an address is distrusted: it contributed to
// a failed piece and is not banned (for tests and status).
func (s *Swarm) Distrusted(a netip.Addr) bool {
	_, ok := (*s.distrusts.Load())[a.Unmap()]
	return ok
}

// sourceAddr is the address of the peer with key k, connected or gone.
func (s *Swarm) sourceAddr(k peerKey) (netip.Addr, bool) {
	if p := s.peers.get(k); p != nil {
		return p.addr.Addr().Unmap(), true
	}
	a, ok := s.gone[k]
	return a, ok
}

// pruneGone forgets departed peers no pending block came from.
func (s *Swarm) pruneGone() {
	if len(s.gone) < 256 {
		return
	}
	used := map[peerKey]bool{}
	for _, ap := range s.picker.active {
		if ap != nil {
			for _, b := range ap.blocks {
				used[b.from] = true
			}
		}
	}
	for k := range s.gone {
		if !used[k] {
			delete(s.gone, k)
		}
	}
}
