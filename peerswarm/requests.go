package peerswarm

import (
	"log/slog"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"flotilla/peerwire"
	"flotilla/swarm"
)

// requester is the download side of the swarm: it owns the Picker and
// every request we send. It fills each peer's pipeline to its
// rate-adaptive depth (fill), takes blocks against our requests
// (received), re-requests overdue blocks and snubs silent peers
// (checkTimeouts), and follows what each peer has (availability and our
// interest, interest.go). The Swarm drives the picker's lease and
// verification calls (Assign, Revoke, stored, hashed) and stores the
// blocks. Owned by the swarm's run goroutine; it reaches peers only
// through the table it is given.
type requester struct {
	picker    *Picker
	numPieces int
	log       *slog.Logger
	// Pipeline and deadlines (swarm.Config).
	targetLatency               time.Duration
	startPipe, minPipe, maxPipe int
	requestTimeout, snubTimeout time.Duration
	// chokedNudge and the time since which every peer holding a piece of
	// the lease chokes us (zero: one of them unchokes us); nudgeBuf holds
	// those peers during a check (interest.go).
	chokedNudge time.Duration
	chokedSince time.Time
	nudgeBuf    []*peer
	// held counts the pieces whose buffers are out of the picker's hands
	// (verifying, delivered and not released, kept as suspects): they count
	// against MaxInFlightBytes (Picker.Held).
	held      func() int
	timedOut  int64
	pickBuf   []Block
	msgBuf    []peerwire.Message
	cancelBuf []peerKey
	// firstBlock is when the first block request was queued (UnixNano);
	// Status reads it from any goroutine.
	firstBlock atomic.Int64
}

func newRequester(cfg swarm.Config, pk *Picker, numPieces int, log *slog.Logger, held func() int) *requester {
	return &requester{picker: pk, numPieces: numPieces, log: log, held: held,
		targetLatency: cfg.TargetLatency, startPipe: cfg.StartPipeline, minPipe: cfg.MinPipeline, maxPipe: cfg.MaxPipeline,
		requestTimeout: cfg.RequestTimeout, snubTimeout: cfg.SnubTimeout, chokedNudge: cfg.ChokedNudge}
}

func (r *requester) fillAll(t *peerTable) {
	for p := range t.all() {
		r.fill(t, p)
	}
}

// fill tops up p's request pipeline to its rate-adaptive depth.
func (r *requester) fill(t *peerTable, p *peer) {
	if !p.amInterested || (p.peerChoking && len(p.allowedFast) == 0) {
		return
	}
	depth := pipelineDepth(p.down.Rate(), r.targetLatency, peerwire.BlockSize,
		r.startPipe, r.minPipe, r.maxPipe)
	if p.snubbed {
		depth = 1
	}
	if p.reqq > 0 {
		depth = min(depth, p.reqq)
	}
	want := depth - len(p.reqs)
	if r.picker.EndGame() {
		// Every block is requested: duplicates go only to nearly idle
		// peers, so that fast peers do not re-fetch what is in flight.
		want = r.minPipe - len(p.reqs)
		if want <= 0 {
			return
		}
	} else if want <= 0 || (len(p.reqs) > 0 && want < depth/4) {
		return
	}
	r.picker.Held = r.held()
	r.pickBuf = r.picker.Pick(p.key, p.hasFn, want, r.pickBuf[:0])
	if len(r.pickBuf) == 0 {
		return
	}
	now := time.Now()
	if p.waitSince.IsZero() {
		p.waitSince = now // the snub clock runs from the first unanswered request
	}
	msgs := r.msgBuf[:0]
	for _, b := range r.pickBuf {
		k := blockKey(b.Piece, b.Begin)
		p.reqs[k] = now
		p.queue = append(p.queue, reqEntry{k, now})
		msgs = append(msgs, peerwire.Message{ID: peerwire.Request, Index: uint32(b.Piece), Begin: uint32(b.Begin), Length: uint32(b.Length)})
	}
	t.send(p, msgs...)
	clear(msgs)
	r.msgBuf = msgs[:0]
	if r.firstBlock.Load() == 0 {
		r.firstBlock.Store(now.UnixNano())
	}
}

// checkTimeouts re-requests blocks whose deadline passed and marks snubbed
// peers. Peers answer in order, so only the head of each send-order queue
// needs looking at.
func (r *requester) checkTimeouts(now time.Time, t *peerTable) {
	changed := false
	for p := range t.all() {
		var cancels []peerwire.Message
		for len(p.queue) > 0 {
			e := p.queue[0]
			sent, ok := p.reqs[e.key]
			if ok && sent.Equal(e.sent) {
				if now.Sub(sent) < r.requestTimeout {
					break
				}
				r.unrequest(p, e.key)
				p.grace++
				r.timedOut++
				piece, begin := int(e.key>>32), int(uint32(e.key))
				cancels = append(cancels, peerwire.Message{ID: peerwire.Cancel, Index: uint32(piece), Begin: uint32(begin),
					Length: uint32(r.picker.g.blockLen(piece, begin/peerwire.BlockSize))})
				changed = true
			}
			p.queue[0] = reqEntry{}
			p.queue = p.queue[1:]
		}
		if len(p.queue) == 0 {
			p.queue = p.queue[:0:0]
		}
		if !p.peerChoking && len(p.reqs) > 0 && !p.snubbed && !p.waitSince.IsZero() && now.Sub(p.waitSince) >= r.snubTimeout {
			p.snubbed = true
			p.grace += len(p.reqs)
			r.log.Debug("peer snubbed us", "peer", p.addr)
			for k := range p.reqs {
				r.unrequest(p, k)
				cancels = append(cancels, peerwire.Message{ID: peerwire.Cancel, Index: uint32(k >> 32), Begin: uint32(k),
					Length: uint32(r.picker.g.blockLen(int(k>>32), int(uint32(k))/peerwire.BlockSize))})
			}
			changed = true
		}
		if len(cancels) > 0 {
			t.send(p, cancels...)
		}
	}
	if changed {
		r.fillAll(t)
	}
}

// unrequest forgets our request k at p so another peer can fetch it.
func (r *requester) unrequest(p *peer, k uint64) {
	delete(p.reqs, k)
	piece, begin := int(k>>32), int(uint32(k))
	if _, ok := r.picker.g.validBlock(piece, begin, r.picker.g.blockLen(piece, begin/peerwire.BlockSize)); ok {
		r.picker.Unrequest(p.key, Block{piece, begin, r.picker.g.blockLen(piece, begin/peerwire.BlockSize)})
	}
}

// rejected handles p's reject of our request for the block at (index, begin).
func (r *requester) rejected(p *peer, index, begin uint32) {
	k := blockKey(int(index), int(begin))
	if _, ok := p.reqs[k]; ok {
		r.unrequest(p, k)
	}
}

// chokedBy handles p's choke: without the fast extension it discards our
// requests (blocks already on the wire may still come).
func (r *requester) chokedBy(p *peer) {
	p.peerChoking = true
	if !p.fast {
		p.grace += len(p.reqs)
		for k := range p.reqs {
			r.unrequest(p, k)
		}
	}
}

// blockFate is what a received block is to the requester.
type blockFate int

const (
	blockUnasked  blockFate = iota // neither requested nor graced: wasted, not counted as downloaded
	blockDup                       // answers a request, but the picker has it already: wasted
	blockFresh                     // the first copy: the caller stores it
	blockComplete                  // the first copy, and its piece is now whole: store it and verify
)

// received takes a block of n bytes from p against our requests. A block
// we did not request (and did not stop waiting for) is not used; past
// maxUnrequested of them p gets errUnrequested. For a fresh block in the
// end game, the same block requested from other peers is cancelled.
func (r *requester) received(t *peerTable, p *peer, piece, begin, n int) (blockFate, error) {
	k := blockKey(piece, begin)
	if _, ok := p.reqs[k]; !ok {
		if p.grace == 0 {
			p.unrequested++
			if p.unrequested > maxUnrequested {
				return blockUnasked, errUnrequested
			}
			return blockUnasked, nil
		}
		p.grace--
	}
	delete(p.reqs, k)
	p.down.Add(n)
	p.lastBlock = time.Now()
	p.lastPayload = p.lastBlock
	p.waitSince = time.Time{}
	p.snubbed = false
	res := r.picker.Received(p.key, Block{piece, begin, n}, r.cancelBuf)
	r.cancelBuf = res.Cancel
	if !res.Fresh {
		return blockDup, nil
	}
	for _, o := range res.Cancel {
		if q := t.get(o); q != nil {
			if _, ok := q.reqs[k]; ok {
				delete(q.reqs, k)
				q.grace++
				t.send(q, peerwire.Message{ID: peerwire.Cancel, Index: uint32(piece), Begin: uint32(begin), Length: uint32(n)})
			}
		}
	}
	if res.Complete {
		return blockComplete, nil
	}
	return blockFresh, nil
}

// cancelPiece cancels every outstanding request for piece i (revoked, or
// obtained elsewhere).
func (r *requester) cancelPiece(t *peerTable, i int) {
	for p := range t.all() {
		var msgs []peerwire.Message
		for k := range p.reqs {
			if int(k>>32) == i {
				delete(p.reqs, k)
				p.grace++
				msgs = append(msgs, peerwire.Message{ID: peerwire.Cancel, Index: uint32(i), Begin: uint32(k), Length: uint32(r.picker.g.blockLen(i, int(uint32(k))/peerwire.BlockSize))})
			}
		}
		if len(msgs) > 0 {
			t.send(p, msgs...)
		}
	}
}

// setDistrust restricts (or frees) the connected peers at addrs in the
// picker, once the guard has distrusted (or trusted again) them. Runs once
// per change of trust, O(peers).
func (r *requester) setDistrust(t *peerTable, addrs []netip.Addr, distrust bool) {
	for p := range t.all() {
		if !slices.Contains(addrs, p.addr.Addr().Unmap()) {
			continue
		}
		if distrust {
			r.picker.Distrust(p.key)
		} else {
			r.picker.Trust(p.key)
		}
	}
}

// peerLeft forgets p's requests and what it has; the blocks it sent are
// dropped too when it was banned (not worth a hash).
func (r *requester) peerLeft(p *peer, banned bool) {
	if banned {
		r.picker.DropBlocksFrom(p.key)
	}
	r.picker.avail.Gone(p.bf, p.haveAll)
	r.picker.PeerLeft(p.key)
}
