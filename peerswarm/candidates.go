package peerswarm

import (
	"net/netip"
	"slices"
	"time"
)

// candidate is a peer address the swarm may dial (AddPeers), with its
// dialing state and back-off after failed attempts.
type candidate struct {
	dialing bool
	fails   int
	next    time.Time
	self    bool
	added   time.Time // last heard of (AddPeers)
}

// maxCandidates bounds the addresses a swarm remembers to dial; beyond it
// the stalest addresses not being dialed or connected are forgotten (those
// that failed to connect first), down to three quarters of it.
const maxCandidates = 4096

// AddPeers implements swarm.Worker: the addresses (unmapped; invalid ones
// and port 0 skipped) become candidates to dial, and dialing starts within
// the MaxDialing and MaxPeers caps. A seed keeps them but does not dial:
// leechers come to it. Beyond maxCandidates the stalest are forgotten.
func (s *Swarm) AddPeers(addrs []netip.AddrPort) {
	addrs = append([]netip.AddrPort(nil), addrs...)
	s.loop.Post(func() {
		now := time.Now()
		for _, a := range addrs {
			a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
			if !a.IsValid() || a.Port() == 0 {
				continue
			}
			c := s.cands[a]
			if c == nil {
				c = &candidate{}
				s.cands[a] = c
			}
			c.added = now
		}
		if len(s.cands) > maxCandidates {
			s.pruneCandidates(maxCandidates * 3 / 4)
		}
		s.dialMore(now)
	})
}

// pruneCandidates forgets candidates until at most keep remain, sparing
// those being dialed or connected: first the ones that failed most, then
// the least recently heard of.
func (s *Swarm) pruneCandidates(keep int) {
	type cand struct {
		a netip.AddrPort
		c *candidate
	}
	var drop []cand
	for a, c := range s.cands {
		if !c.dialing && !s.connectedTo(a) {
			drop = append(drop, cand{a, c})
		}
	}
	slices.SortFunc(drop, func(x, y cand) int {
		if x.c.fails != y.c.fails {
			return y.c.fails - x.c.fails
		}
		return x.c.added.Compare(y.c.added)
	})
	for _, d := range drop {
		if len(s.cands) <= keep {
			return
		}
		delete(s.cands, d.a)
	}
}

// dialMore starts outgoing connections while under the caps.
func (s *Swarm) dialMore(now time.Time) {
	if s.seeding() {
		return // seeds wait for leechers to come
	}
	dialing := 0
	for _, c := range s.cands {
		if c.dialing {
			dialing++
		}
	}
	for a, c := range s.cands {
		if dialing >= s.cfg.MaxDialing || s.peers.n+dialing >= s.cfg.MaxPeers {
			return
		}
		if c.dialing || c.self || now.Before(c.next) || s.connectedTo(a) || s.wire.isBanned(a.Addr()) {
			continue
		}
		c.dialing = true
		dialing++
		s.wg.Add(1)
		go s.wire.dial(a)
	}
}

func (s *Swarm) connectedTo(a netip.AddrPort) bool {
	for p := range s.peers.all() {
		if p.addr == a {
			return true
		}
	}
	return false
}
