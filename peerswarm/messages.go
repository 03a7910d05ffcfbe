package peerswarm

import (
	"time"

	"flotilla/internal/bitfield"
	"flotilla/peerwire"
)

func (s *Swarm) handleBatch(b *connBatch) {
	p := s.peers.get(b.h.key)
	if p == nil || p.h != b.h {
		releaseBatch(b)
		return
	}
	for i := range b.evs {
		if !s.peers.has(p) {
			break
		}
		err := s.handleMsg(p, &b.evs[i])
		if err == nil && p.h.out.isFull() {
			err = errOutQueueFull
		}
		if err != nil {
			s.dropPeer(p, err)
		}
	}
	if b.err != nil {
		s.dropPeer(p, b.err)
	} else if s.peers.has(p) {
		s.fill(p)
	}
	releaseBatch(b)
}

func (s *Swarm) handleMsg(p *peer, ev *connEvent) error {
	m := &ev.msg
	if m.ID.IsFast() && !p.fast {
		return errFastMisuse
	}
	switch m.ID {
	case peerwire.Choke:
		s.chokedBy(p)
	case peerwire.Unchoke:
		p.peerChoking = false
		p.waitSince = time.Time{}
		s.log.Debug("unchoked by peer", "peer", p.addr)
	case peerwire.Interested:
		p.peerInterested = true
		s.up.maybeUnchoke(s.peers, p)
	case peerwire.NotInterested:
		p.peerInterested = false
	case peerwire.Have:
		return s.peerHas(p, int(m.Index))
	case peerwire.BitfieldMsg:
		return s.peerBitfield(p, m.Bitfield)
	case peerwire.HaveAll:
		return s.peerHasAll(p)
	case peerwire.HaveNone:
		p.gotBF = true
	case peerwire.Request:
		return s.up.serve(s.peers, p, m)
	case peerwire.Cancel:
		p.h.out.dropUploads(func(x peerwire.Message) bool {
			return x.Index == m.Index && x.Begin == m.Begin && x.Length == m.Length
		})
	case peerwire.Piece:
		err := s.gotBlock(p, int(m.Index), int(m.Begin), m.Block)
		if ev.block != nil {
			blockPool.Put(ev.block)
			ev.block = nil
		}
		return err
	case peerwire.Reject:
		k := blockKey(int(m.Index), int(m.Begin))
		if _, ok := p.reqs[k]; ok {
			s.unrequest(p, k)
		}
	case peerwire.AllowedFast:
		p.allowFast(m.Index)
	case peerwire.Extended:
		if m.ExtID == peerwire.ExtHandshakeID {
			if h, err := peerwire.ParseExtHandshake(m.ExtPayload); err == nil && h.Reqq > 0 {
				p.reqq = h.Reqq
			}
		}
	}
	return nil
}

// chokedBy handles p's choke: without the fast extension it discards our
// requests (blocks already on the wire may still come).
func (s *Swarm) chokedBy(p *peer) {
	p.peerChoking = true
	if !p.fast {
		p.grace += len(p.reqs)
		for k := range p.reqs {
			s.unrequest(p, k)
		}
	}
}

// allowFast records a piece p lets us download while choked (BEP 6),
// at most 64 of them.
func (p *peer) allowFast(i uint32) {
	if p.allowedFast == nil {
		p.allowedFast = map[uint32]bool{}
	}
	if len(p.allowedFast) < 64 {
		p.allowedFast[i] = true
	}
}

// peerHas takes p's have of piece i; two seeds part (errBothSeeds).
func (s *Swarm) peerHas(p *peer, i int) error {
	n := s.info.NumPieces()
	if p.has(i) {
		return nil
	}
	if p.bf == nil {
		p.bf = bitfield.New(n)
	}
	p.bf.Set(i)
	p.nhave++
	s.picker.avail.Have(i)
	if !s.picker.Have(i) {
		p.wanted++
		s.setInterested(p, true)
	}
	if s.up.seeding() && p.isSeed(n) {
		return errBothSeeds
	}
	return nil
}

// peerBitfield takes p's bitfield: normally its first message, but some
// clients (aria2) send have-none first and a bitfield later. A later
// bitfield replaces the old.
func (s *Swarm) peerBitfield(p *peer, bf bitfield.Bitfield) error {
	n := s.info.NumPieces()
	s.forgetPieces(p)
	p.gotBF = true
	p.bf = bf
	s.picker.avail.Bitfield(p.bf)
	for i := 0; i < n; i++ {
		if p.bf.Has(i) {
			p.nhave++
			if !s.picker.Have(i) {
				p.wanted++
			}
		}
	}
	s.setInterested(p, p.wanted > 0)
	if s.up.seeding() && p.isSeed(n) {
		return errBothSeeds
	}
	return nil
}

// peerHasAll takes p's have-all (BEP 6).
func (s *Swarm) peerHasAll(p *peer) error {
	s.forgetPieces(p)
	p.gotBF, p.haveAll = true, true
	s.picker.avail.HaveAll()
	p.wanted = s.info.NumPieces() - s.picker.Done()
	s.setInterested(p, p.wanted > 0)
	if s.up.seeding() {
		return errBothSeeds
	}
	return nil
}

// forgetPieces drops what p announced so far from availability.
func (s *Swarm) forgetPieces(p *peer) {
	s.picker.avail.Gone(p.bf, p.haveAll)
	p.bf, p.haveAll, p.nhave, p.wanted = nil, false, 0, 0
}

// gotBlock takes a block from p. A block we did not request (and did not
// stop waiting for) is not used; past maxUnrequested of them p is banned.
func (s *Swarm) gotBlock(p *peer, piece, begin int, data []byte) error {
	k := blockKey(piece, begin)
	if _, ok := p.reqs[k]; !ok {
		if p.grace == 0 {
			p.unrequested++
			s.wasted.Add(int64(len(data)))
			if p.unrequested > maxUnrequested {
				return errUnrequested
			}
			return nil
		}
		p.grace--
	}
	delete(p.reqs, k)
	s.downloaded.Add(int64(len(data)))
	s.downRate.Add(len(data))
	p.down.Add(len(data))
	p.lastBlock = time.Now()
	p.lastPayload = p.lastBlock
	p.waitSince = time.Time{}
	p.snubbed = false
	r := s.picker.Received(p.key, Block{piece, begin, len(data)}, s.cancelBuf)
	s.cancelBuf = r.Cancel
	if !r.Fresh {
		s.wasted.Add(int64(len(data)))
		return nil
	}
	copy(s.bufs.get(piece)[begin:], data)
	for _, o := range r.Cancel {
		if q := s.peers.get(o); q != nil {
			if _, ok := q.reqs[k]; ok {
				delete(q.reqs, k)
				q.grace++
				s.peers.send(q, peerwire.Message{ID: peerwire.Cancel, Index: uint32(piece), Begin: uint32(begin), Length: uint32(len(data))})
			}
		}
	}
	if r.Complete {
		buf := s.bufs.take(piece)
		s.verifying++
		s.wire.hashIn <- hashJob{piece: piece, buf: buf} // capacity covers every piece that can be in flight
	}
	return nil
}
