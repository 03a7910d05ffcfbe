package peerswarm

import (
	"fmt"
	"time"

	"flotilla/peerwire"
)

// maxOutstanding is how many requests a peer may have unanswered (queued
// uploads and rejects not yet written), or send while choked: twice the request queue we advertise, plus slack for
// requests that cross a choke on the wire. A peer past it floods us.
func (s *Swarm) maxOutstanding() int { return 2*s.cfg.MaxUploadQueue + 64 }

// serve queues an upload, or rejects it; a peer flooding requests gets
// errRequestFlood.
func (s *Swarm) serve(p *peer, m *peerwire.Message) error {
	if n := p.h.out.pendingAnswers(); n >= s.maxOutstanding() {
		return fmt.Errorf("%w: %d answers not yet read by the peer", errRequestFlood, n)
	}
	i := int(m.Index)
	ok := s.advertised.Has(i) && !p.amChoking &&
		p.h.out.queuedUploads() < s.cfg.MaxUploadQueue
	if ok {
		s.peers.send(p, peerwire.Message{ID: peerwire.Piece, Index: m.Index, Begin: m.Begin, Length: m.Length})
		return nil
	}
	if p.amChoking {
		// Requests that cross our choke on the wire are few; more are a
		// flood (a reading peer that is over our queue while unchoked
		// only gets rejects, which cost nothing that stays).
		if p.refused++; p.refused > s.maxOutstanding() {
			return fmt.Errorf("%w: %d requests while choked", errRequestFlood, p.refused)
		}
	}
	if p.fast {
		s.peers.send(p, peerwire.Message{ID: peerwire.Reject, Index: m.Index, Begin: m.Begin, Length: m.Length})
	}
	return nil
}

func (s *Swarm) setChoking(p *peer, choke bool) {
	if p.amChoking == choke {
		return
	}
	p.amChoking = choke
	p.refused = 0
	if !choke {
		s.peers.send(p, peerwire.Message{ID: peerwire.Unchoke})
		return
	}
	dropped := p.h.out.dropUploads(func(peerwire.Message) bool { return true })
	msgs := []peerwire.Message{{ID: peerwire.Choke}}
	if p.fast {
		for _, d := range dropped {
			msgs = append(msgs, peerwire.Message{ID: peerwire.Reject, Index: d.Index, Begin: d.Begin, Length: d.Length})
		}
	}
	s.peers.send(p, msgs...)
}

// maybeUnchoke gives a newly interested peer a free upload slot at once
// instead of making it wait for the next choke round.
func (s *Swarm) maybeUnchoke(p *peer) {
	if !p.amChoking || s.nAdvertised == 0 {
		return
	}
	unchoked := 0
	for q := range s.peers.all() {
		if !q.amChoking {
			unchoked++
		}
	}
	if unchoked < s.cfg.UploadSlots {
		s.setChoking(p, false)
	}
}

func (s *Swarm) chokeRound(now time.Time) {
	seeding := s.seeding()
	var cands []chokeCandidate
	for p := range s.peers.all() {
		rate := p.down.Rate()
		if seeding {
			rate = p.up.Rate()
		}
		cands = append(cands, chokeCandidate{Key: p.key, Interested: p.peerInterested, Rate: rate, Snubbed: p.snubbed})
	}
	unchoke := s.choker.Decide(now, seeding, cands, nil)
	set := make(map[peerKey]bool, len(unchoke))
	for _, k := range unchoke {
		set[k] = true
	}
	for p := range s.peers.all() {
		s.setChoking(p, !set[p.key])
	}
}
