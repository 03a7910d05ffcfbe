package peerswarm

import (
	"time"

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
		s.req.fill(s.peers, p)
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
		s.req.chokedBy(p)
		s.log.Debug("choked by peer", "peer", p.addr)
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
		if !s.req.peerHas(s.peers, p, int(m.Index)) {
			return nil
		}
		return s.bothSeeds(p)
	case peerwire.BitfieldMsg:
		s.req.peerBitfield(s.peers, p, m.Bitfield)
		return s.bothSeeds(p)
	case peerwire.HaveAll:
		s.req.peerHasAll(s.peers, p)
		return s.bothSeeds(p)
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
		s.req.rejected(p, m.Index, m.Begin)
	case peerwire.AllowedFast:
		p.allowFast(m.Index)
	case peerwire.Extended:
		if m.ExtID == peerwire.ExtHandshakeID {
			if h, err := peerwire.ParseExtHandshake(m.ExtPayload); err == nil {
				if h.Reqq > 0 {
					p.reqq = h.Reqq
				}
				p.utMetadata = uint8(h.M[peerwire.ExtMetadataName])
				s.pexHandshake(p, h, time.Now())
			}
		} else if m.ExtID == ourMetadataID {
			return s.up.serveMetadata(s.peers, p, m.ExtPayload)
		} else if m.ExtID == ourPexID {
			return s.gotPex(p, m.ExtPayload, time.Now())
		}
	}
	return nil
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

// bothSeeds parts from p once it and we have every piece: nothing to
// trade.
func (s *Swarm) bothSeeds(p *peer) error {
	if s.up.seeding() && p.isSeed(s.info.NumPieces()) {
		return errBothSeeds
	}
	return nil
}

// gotBlock takes a block from p: the requester checks it against our
// requests; a fresh one is stored in its piece's buffer, and a complete
// piece goes to the SHA-1 pool.
func (s *Swarm) gotBlock(p *peer, piece, begin int, data []byte) error {
	n := len(data)
	fate, err := s.req.received(s.peers, p, piece, begin, n)
	if fate == blockUnasked {
		s.wasted.Add(int64(n))
		return err
	}
	s.downloaded.Add(int64(n))
	s.downRate.Add(n)
	if fate == blockDup {
		s.wasted.Add(int64(n))
		return nil
	}
	copy(s.bufs.get(piece)[begin:], data)
	if fate == blockComplete {
		buf := s.bufs.take(piece)
		s.verifying++
		s.wire.hashIn <- hashJob{piece: piece, buf: buf} // capacity covers every piece that can be in flight
	}
	return nil
}
