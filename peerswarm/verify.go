package peerswarm

import (
	"crypto/sha1"
	"net/netip"

	"flotilla/peerwire"
	"flotilla/swarm"
)

type hashJob struct {
	piece int
	buf   []byte
	ok    bool
}

func (w *wire) hashLoop() {
	defer w.wg.Done()
	for {
		select {
		case <-w.closing:
			return
		case j := <-w.hashIn:
			sum := sha1.Sum(j.buf)
			j.ok = sum == w.info.PieceHash(j.piece)
			select {
			case w.hashOut <- j:
			case <-w.closing:
				return
			}
		}
	}
}

// maxSuspects bounds the failed pieces kept for blame (one buffer each).
const maxSuspects = 8

// suspect is a piece that failed its hash while several peers contributed
// to it: its data is kept until the piece verifies, then the blocks that
// differ name the guilty peers exactly.
type suspect struct {
	buf  []byte
	from []netip.Addr
}

func (s *Swarm) hashed(j hashJob) {
	s.verifying--
	var srcs []peerKey
	if !j.ok {
		srcs = s.req.picker.BlockSources(j.piece, nil)
	}
	s.req.picker.Verified(j.piece, j.ok, nil)
	if j.ok {
		s.delivered++
		s.req.pieceDone(s.peers, j.piece)
		if sus, ok := s.suspects[j.piece]; ok {
			delete(s.suspects, j.piece)
			if guilty := blame(sus.buf, j.buf, sus.from, peerwire.BlockSize, nil); len(guilty) > 0 {
				// The guilty keep the strike of the failure; the others'
				// blocks proved right, so theirs is taken back.
				s.log.Info("peers sent bad blocks", "piece", j.piece, "peers", guilty)
				if trusted := s.guard.absolve(sus.from, guilty); len(trusted) > 0 {
					s.req.setDistrust(s.peers, trusted, false)
				}
			}
			s.bufs.release(sus.buf)
		}
		s.unreleased.Add(1)
		s.outbox = append(s.outbox, swarm.WorkerEvent{Kind: swarm.EventPiece, Piece: j.piece, Data: j.buf, Verified: true})
		s.req.fillAll(s.peers)
		return
	}
	s.hashFails++
	s.wasted.Add(int64(len(j.buf)))
	from, distinct := s.guard.sources(srcs, s.peers)
	s.log.Info("piece failed hash check", "piece", j.piece, "contributors", distinct)
	// Every contributor is distrusted (a repeat bans it); when the piece
	// later verifies, blame takes the strike back from those whose blocks
	// were right.
	distrusted, banned := s.guard.hashFailed(distinct)
	if len(distrusted) > 0 {
		s.req.setDistrust(s.peers, distrusted, true)
	}
	if len(banned) > 0 {
		s.ban(banned...)
	}
	_, already := s.suspects[j.piece]
	if len(distinct) > 1 && !already && len(s.suspects) < maxSuspects {
		s.suspects[j.piece] = suspect{buf: j.buf, from: from}
	} else {
		s.bufs.release(j.buf)
	}
	s.req.fillAll(s.peers)
}
