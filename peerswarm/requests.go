package peerswarm

import (
	"time"

	"flotilla/peerwire"
)

func (s *Swarm) fillAll() {
	for p := range s.peers.all() {
		s.fill(p)
	}
}

// fill tops up p's request pipeline to its rate-adaptive depth.
func (s *Swarm) fill(p *peer) {
	if !p.amInterested || (p.peerChoking && len(p.allowedFast) == 0) {
		return
	}
	depth := pipelineDepth(p.down.Rate(), s.cfg.TargetLatency, peerwire.BlockSize,
		s.cfg.StartPipeline, s.cfg.MinPipeline, s.cfg.MaxPipeline)
	if p.snubbed {
		depth = 1
	}
	if p.reqq > 0 {
		depth = min(depth, p.reqq)
	}
	want := depth - len(p.reqs)
	if s.picker.EndGame() {
		// Every block is requested: duplicates go only to nearly idle
		// peers, so that fast peers do not re-fetch what is in flight.
		want = s.cfg.MinPipeline - len(p.reqs)
		if want <= 0 {
			return
		}
	} else if want <= 0 || (len(p.reqs) > 0 && want < depth/4) {
		return
	}
	s.picker.Held = s.verifying + int(s.unreleased.Load()) + len(s.suspects)
	s.pickBuf = s.picker.Pick(p.key, p.hasFn, want, s.pickBuf[:0])
	if len(s.pickBuf) == 0 {
		return
	}
	now := time.Now()
	if p.waitSince.IsZero() {
		p.waitSince = now // the snub clock runs from the first unanswered request
	}
	msgs := s.msgBuf[:0]
	for _, b := range s.pickBuf {
		k := blockKey(b.Piece, b.Begin)
		p.reqs[k] = now
		p.queue = append(p.queue, reqEntry{k, now})
		msgs = append(msgs, peerwire.Message{ID: peerwire.Request, Index: uint32(b.Piece), Begin: uint32(b.Begin), Length: uint32(b.Length)})
	}
	s.peers.send(p, msgs...)
	clear(msgs)
	s.msgBuf = msgs[:0]
	if s.firstBlock.Load() == 0 {
		s.firstBlock.Store(now.UnixNano())
	}
}

// checkTimeouts re-requests blocks whose deadline passed and marks snubbed
// peers. Peers answer in order, so only the head of each send-order queue
// needs looking at.
func (s *Swarm) checkTimeouts(now time.Time) {
	changed := false
	for p := range s.peers.all() {
		var cancels []peerwire.Message
		for len(p.queue) > 0 {
			e := p.queue[0]
			sent, ok := p.reqs[e.key]
			if ok && sent.Equal(e.sent) {
				if now.Sub(sent) < s.cfg.RequestTimeout {
					break
				}
				s.unrequest(p, e.key)
				p.grace++
				s.timedOut++
				piece, begin := int(e.key>>32), int(uint32(e.key))
				cancels = append(cancels, peerwire.Message{ID: peerwire.Cancel, Index: uint32(piece), Begin: uint32(begin),
					Length: uint32(s.picker.g.blockLen(piece, begin/peerwire.BlockSize))})
				changed = true
			}
			p.queue[0] = reqEntry{}
			p.queue = p.queue[1:]
		}
		if len(p.queue) == 0 {
			p.queue = p.queue[:0:0]
		}
		if !p.peerChoking && len(p.reqs) > 0 && !p.snubbed && !p.waitSince.IsZero() && now.Sub(p.waitSince) >= s.cfg.SnubTimeout {
			p.snubbed = true
			p.grace += len(p.reqs)
			s.log.Debug("peer snubbed us", "peer", p.addr)
			for k := range p.reqs {
				s.unrequest(p, k)
				cancels = append(cancels, peerwire.Message{ID: peerwire.Cancel, Index: uint32(k >> 32), Begin: uint32(k),
					Length: uint32(s.picker.g.blockLen(int(k>>32), int(uint32(k))/peerwire.BlockSize))})
			}
			changed = true
		}
		if len(cancels) > 0 {
			s.peers.send(p, cancels...)
		}
	}
	if changed {
		s.fillAll()
	}
}

// unrequest forgets our request k at p so another peer can fetch it.
func (s *Swarm) unrequest(p *peer, k uint64) {
	delete(p.reqs, k)
	piece, begin := int(k>>32), int(uint32(k))
	if _, ok := s.picker.g.validBlock(piece, begin, s.picker.g.blockLen(piece, begin/peerwire.BlockSize)); ok {
		s.picker.Unrequest(p.key, Block{piece, begin, s.picker.g.blockLen(piece, begin/peerwire.BlockSize)})
	}
}
