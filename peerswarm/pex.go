package peerswarm

import (
	"net/netip"
	"time"

	"flotilla/peerwire"
	"flotilla/swarm"
)

// BEP 11 peer exchange (ut_pex). Every peer that advertises ut_pex gets a
// message at most once per interval (swarm.Config.PexInterval, a minute by
// default; the first a twelfth of it after its extension handshake, once
// the connection settled) listing the peers that joined and left since the
// last one sent to it: only peers we can vouch for being reachable (those
// we dialed, and those that dialed us and gave their listen port), never
// the receiver itself, at most peerwire.MaxPexPeers of each. What a peer
// tells us is taken at most once per three quarters of the interval (more
// often is ignored, as libtorrent does), at most MaxPexPeers addresses a
// message: they become dial candidates (the dialer's book is bounded) and
// go to the sub-chief (swarm.EventPeers), which deals them to its workers.
// A private torrent (BEP 27) neither advertises nor accepts PEX.
//
// Flags: we send 0x10 (reachable) for peers we dialed, 0x02 (seed) for
// seeds and 0x01 (prefers encryption) for peers on an RC4 connection. Of
// those we receive, a seed's (0x02) is ignored while we seed (seed to
// seed has nothing to trade); a peer without 0x01 is dialed with a
// plaintext handshake first under mse.Prefer, one with it with MSE first
// (dialer.addPex).

// ourPexID is the extended message ID peers use for ut_pex messages to us.
const ourPexID = 1

// pexInterval is the time between two PEX messages to one peer.
func (s *Swarm) pexInterval() time.Duration {
	if s.cfg.PexInterval > 0 {
		return s.cfg.PexInterval
	}
	return time.Minute
}

// pexEnabled: PEX is off for a private torrent.
func (s *Swarm) pexEnabled() bool { return !s.info.Private }

// pexHandshake takes what a peer's extension handshake says about PEX:
// its ut_pex ID and listen port; the first message to it is due soon.
func (s *Swarm) pexHandshake(p *peer, h peerwire.ExtHandshake, now time.Time) {
	if h.P != 0 { // a later handshake without "p" does not unsay it
		p.listenPort = uint16(h.P)
	}
	id := uint8(h.M[peerwire.ExtPexName])
	// Once scheduled, a peer's messages keep their pace: repeating its
	// handshake does not bring the next one forward.
	if id != 0 && p.pexNext.IsZero() && s.pexEnabled() {
		p.pexNext = now.Add(s.pexInterval() / 12)
	}
	p.utPex = id
}

// reachable is the address a peer can be dialed at, and whether we know
// one: where we dialed it, or its address with the listen port it gave.
func (p *peer) reachable() (netip.AddrPort, bool) {
	switch {
	case p.outgoing:
		return p.addr, true
	case p.listenPort != 0:
		return netip.AddrPortFrom(p.addr.Addr(), p.listenPort), true
	}
	return netip.AddrPort{}, false
}

// pexTick sends the PEX messages that are due.
func (s *Swarm) pexTick(now time.Time) {
	if !s.pexEnabled() {
		return
	}
	var live map[netip.AddrPort]peerwire.PexFlags
	for p := range s.peers.all() {
		if p.utPex == 0 || p.pexNext.IsZero() || now.Before(p.pexNext) {
			continue
		}
		if live == nil {
			live = s.pexLive()
		}
		p.pexNext = now.Add(s.pexInterval())
		if m, ok := pexDiff(p, live); ok {
			s.peers.send(p, peerwire.Message{ID: peerwire.Extended, ExtID: p.utPex, ExtPayload: m.AppendTo(nil)})
		}
	}
}

// pexLive is the reachable connected peers with their flags.
func (s *Swarm) pexLive() map[netip.AddrPort]peerwire.PexFlags {
	live := map[netip.AddrPort]peerwire.PexFlags{}
	for q := range s.peers.all() {
		a, ok := q.reachable()
		if !ok {
			continue
		}
		var f peerwire.PexFlags
		if q.outgoing {
			f |= peerwire.PexReachable
		}
		if q.encrypted {
			f |= peerwire.PexPrefersEncryption
		}
		if q.isSeed(s.info.NumPieces()) {
			f |= peerwire.PexSeed
		}
		live[a] = f
	}
	return live
}

// pexDiff is the message for p: live peers it was not told of, and those
// it was told of that left, at most MaxPexPeers of each; p's record of
// what it was told follows. False when there is nothing to say.
func pexDiff(p *peer, live map[netip.AddrPort]peerwire.PexFlags) (peerwire.PexMsg, bool) {
	if p.pexTold == nil {
		p.pexTold = map[netip.AddrPort]bool{}
	}
	self, _ := p.reachable()
	var m peerwire.PexMsg
	for a, f := range live {
		if len(m.Added) == peerwire.MaxPexPeers {
			break
		}
		if a != self && a != p.addr && !p.pexTold[a] {
			m.Added = append(m.Added, peerwire.PexPeer{Addr: a, Flags: f})
			p.pexTold[a] = true
		}
	}
	for a := range p.pexTold {
		if len(m.Dropped) == peerwire.MaxPexPeers {
			break
		}
		if _, ok := live[a]; !ok {
			m.Dropped = append(m.Dropped, a)
			delete(p.pexTold, a)
		}
	}
	return m, len(m.Added)+len(m.Dropped) > 0
}

// gotPex takes a peer's ut_pex message: malformed is a protocol error;
// sent too soon after the last one, or in a private torrent, it is
// ignored; otherwise the added peers become candidates and go to the
// sub-chief.
func (s *Swarm) gotPex(p *peer, payload []byte, now time.Time) error {
	if !s.pexEnabled() {
		return nil
	}
	m, err := peerwire.ParsePexMsg(payload)
	if err != nil {
		return err
	}
	if !p.pexHeard.IsZero() && now.Sub(p.pexHeard) < s.pexInterval()*3/4 {
		s.log.Debug("PEX too soon; ignored", "peer", p.addr)
		return nil
	}
	p.pexHeard = now
	s.log.Debug("PEX received", "from", p.addr, "added", len(m.Added), "dropped", len(m.Dropped))
	self, _ := p.reachable()
	seeding := s.up.seeding()
	addrs := make([]netip.AddrPort, 0, len(m.Added))
	added := make([]peerwire.PexPeer, 0, len(m.Added))
	for _, a := range m.Added {
		if a.Addr == self || a.Addr == p.addr || s.guard.bans.has(a.Addr.Addr()) {
			continue
		}
		if seeding && a.Flags&peerwire.PexSeed != 0 {
			continue // seed to seed: nothing to trade
		}
		addrs = append(addrs, a.Addr)
		added = append(added, a)
	}
	if len(addrs) == 0 {
		return nil
	}
	s.log.Debug("peers learned by PEX", "from", p.addr, "n", len(addrs))
	s.dialer.addPex(added, now, s.peers)
	s.dialer.dialMore(now, s.up.seeding(), s.peers)
	s.outbox = append(s.outbox, swarm.WorkerEvent{Kind: swarm.EventPeers, Addrs: addrs})
	return nil
}
