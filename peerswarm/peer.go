package peerswarm

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"flotilla/internal/bitfield"
	"flotilla/internal/rate"
	"flotilla/peerwire"
)

var (
	errBothSeeds     = errors.New("swarm: both sides complete")
	errDuplicatePeer = errors.New("swarm: duplicate connection")
	errTooManyPeers  = errors.New("swarm: connection cap reached")
	errFastMisuse    = errors.New("swarm: fast-extension message without the fast extension")

	// Abuse: each bans the peer's address.
	errRequestFlood = errors.New("swarm: peer sent more requests than it may have outstanding")
	errOutQueueFull = errors.New("swarm: peer stopped reading and its outbound queue is full")
	errUnrequested  = errors.New("swarm: peer sent blocks nobody requested")
)

// maxExtMessage caps extension messages (and unknown ones): we use only the
// extension handshake, which is far smaller.
const maxExtMessage = 64 << 10

// maxUnrequested is how many blocks a peer may send that we did not
// request (or stopped waiting for long ago) before it is banned.
const maxUnrequested = 8

// banworthy reports whether a peer dropped with err is banned too.
func banworthy(err error) bool {
	return errors.Is(err, peerwire.ErrProtocol) || errors.Is(err, errFastMisuse) ||
		errors.Is(err, errRequestFlood) || errors.Is(err, errOutQueueFull) || errors.Is(err, errUnrequested)
}

// peer is the owner goroutine's state of one connection.
type peer struct {
	h        *connHandle
	key      peerKey
	addr     netip.AddrPort
	id       [20]byte
	fast     bool
	ext      bool
	outgoing bool

	bf      bitfield.Bitfield
	haveAll bool
	nhave   int
	gotBF   bool

	amChoking, amInterested     bool
	peerChoking, peerInterested bool
	allowedFast                 map[uint32]bool

	reqs  map[uint64]time.Time // outstanding requests we sent, by block key
	queue []reqEntry           // the same, in send order (stale entries skipped)
	reqq  int                  // the peer's request queue limit (BEP 10), 0 unknown

	// Abuse accounting.
	refused     int // requests received since we last choked it
	grace       int // blocks we stopped waiting for (cancelled, timed out): they may still come
	unrequested int // blocks received that were neither requested nor graced

	down, up  rate.Meter
	lastUp    int64
	lastBlock time.Time // last block received
	// lastPayload is when a block last went either way (zero: never).
	lastPayload time.Time
	waitSince   time.Time // first request sent since the last block received (zero: none)
	snubbed     bool
	wanted      int // pieces it has that we lack
	hasFn       func(int) bool
}

type reqEntry struct {
	key  uint64
	sent time.Time
}

func blockKey(piece, begin int) uint64 { return uint64(piece)<<32 | uint64(uint32(begin)) }

func (p *peer) has(i int) bool {
	return p.haveAll || (p.bf.Has(i))
}

func (p *peer) isSeed(n int) bool { return p.haveAll || p.nhave == n }

func (s *Swarm) register(nc newConn) {
	c := s.cands[nc.addr]
	if nc.outgoing && c != nil {
		c.dialing = false
	}
	if nc.err != nil {
		if c != nil {
			c.fails++
			c.next = time.Now().Add(time.Duration(min(c.fails, 10)) * 30 * time.Second)
			if errors.Is(nc.err, ErrOwnPeerID) {
				c.self = true
			}
		}
		s.log.Debug("connect failed", "peer", nc.addr, "err", nc.err)
		return
	}
	reject := func(err error) {
		s.log.Debug("connection refused", "peer", nc.addr, "err", err)
		nc.c.Close()
	}
	if s.isBanned(nc.addr.Addr()) {
		reject(ErrBanned)
		return
	}
	for _, p := range s.peers {
		if p != nil && (p.id == nc.hs.PeerID || p.addr == nc.addr) {
			reject(errDuplicatePeer)
			return
		}
	}
	switch {
	case nc.outgoing && s.npeers >= s.cfg.MaxPeers:
		reject(errTooManyPeers)
		return
	case !nc.outgoing && (s.nincoming >= maxIncoming(s.cfg.MaxPeers) || s.npeers >= s.cfg.MaxPeers) && !s.makeRoom(time.Now()):
		reject(errTooManyPeers)
		return
	}
	if c != nil {
		c.fails = 0
	}
	key := s.nextKey
	s.nextKey++
	s.gen++
	h := &connHandle{key: key, gen: s.gen, c: nc.c, addr: nc.addr, quit: make(chan struct{})}
	h.out.wake = make(chan struct{}, 1)
	p := &peer{
		h: h, key: key, addr: nc.addr, id: nc.hs.PeerID,
		fast: nc.hs.SupportsFast(), ext: nc.hs.SupportsExtensions(), outgoing: nc.outgoing,
		amChoking: true, peerChoking: true,
		reqs:      map[uint64]time.Time{},
		lastBlock: time.Now(),
	}
	p.hasFn = func(i int) bool {
		if !p.has(i) {
			return false
		}
		return !p.peerChoking || p.allowedFast[uint32(i)]
	}
	s.peers[key] = p
	if s.trust.Distrusted(nc.addr.Addr()) {
		s.picker.Distrust(key)
	}
	s.npeers++
	if !nc.outgoing {
		s.nincoming++
	}
	h.lastRead.Store(time.Now().UnixNano())
	var init []peerwire.Message
	if p.ext {
		init = append(init, peerwire.Message{ID: peerwire.Extended, ExtID: peerwire.ExtHandshakeID, ExtPayload: s.extHandshake()})
	}
	switch {
	case p.fast && s.seeding():
		init = append(init, peerwire.Message{ID: peerwire.HaveAll})
	case p.fast && s.nAdvertised == 0:
		init = append(init, peerwire.Message{ID: peerwire.HaveNone})
	case s.nAdvertised > 0:
		init = append(init, peerwire.Message{ID: peerwire.BitfieldMsg, Bitfield: append([]byte(nil), s.advertised...)})
	}
	s.send(p, init...)
	if s.firstPeer.Load() == 0 {
		s.firstPeer.Store(time.Now().UnixNano())
	}
	s.log.Debug("peer connected", "peer", nc.addr, "outgoing", nc.outgoing, "fast", p.fast)
	s.wg.Add(2)
	go s.readLoop(h)
	go s.writeLoop(h)
}

// extHandshake is our BEP 10 handshake: no extensions, our listening
// port, our request queue size and client name.
func (s *Swarm) extHandshake() []byte {
	h := peerwire.ExtHandshake{V: "Flotilla", Reqq: s.cfg.MaxUploadQueue}
	if s.ln != nil {
		if ap, err := netip.ParseAddrPort(s.ln.Addr().String()); err == nil {
			h.P = int(ap.Port())
		}
	}
	return h.Encode()
}

func (s *Swarm) dropPeer(p *peer, err error) {
	if s.peers[p.key] != p {
		return
	}
	if banworthy(err) {
		s.log.Info("peer broke the protocol", "peer", p.addr, "err", err)
		s.ban(p.addr.Addr()) // ban calls dropPeer again for this peer
		if s.peers[p.key] != p {
			return
		}
	} else if err != nil && !errors.Is(err, io.EOF) {
		s.log.Debug("peer dropped", "peer", p.addr, "err", err)
	}
	delete(s.peers, p.key)
	if s.isBanned(p.addr.Addr()) {
		// Blocks it sent that are not yet verified are not worth a hash.
		s.picker.DropBlocksFrom(p.key)
	} else {
		s.gone[p.key] = p.addr.Addr().Unmap()
	}
	s.npeers--
	if !p.outgoing {
		s.nincoming--
	}
	s.picker.PeerGone(p.bf, p.haveAll)
	s.picker.PeerLeft(p.key)
	p.h.close()
	s.uploadedOld += p.h.uploaded.Load()
	if c := s.cands[p.addr]; c != nil {
		c.next = time.Now().Add(30 * time.Second)
	}
	s.fillAll()
}

func (s *Swarm) handleBatch(b *connBatch) {
	p := s.peers[b.h.key]
	if p == nil || p.h != b.h {
		releaseBatch(b)
		return
	}
	for i := range b.evs {
		if s.peers[p.key] != p {
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
	} else if s.peers[p.key] == p {
		s.fill(p)
	}
	releaseBatch(b)
}

func (s *Swarm) handleMsg(p *peer, ev *connEvent) error {
	m := &ev.msg
	if m.ID.IsFast() && !p.fast {
		return errFastMisuse
	}
	n := s.info.NumPieces()
	switch m.ID {
	case peerwire.Choke:
		p.peerChoking = true
		if !p.fast {
			// Without the fast extension a choke discards our requests
			// (blocks already on the wire may still come).
			p.grace += len(p.reqs)
			for k := range p.reqs {
				s.unrequest(p, k)
			}
		}
	case peerwire.Unchoke:
		p.peerChoking = false
		p.waitSince = time.Time{}
		s.log.Debug("unchoked by peer", "peer", p.addr)
	case peerwire.Interested:
		p.peerInterested = true
		s.maybeUnchoke(p)
	case peerwire.NotInterested:
		p.peerInterested = false
	case peerwire.Have:
		i := int(m.Index)
		if p.has(i) {
			return nil
		}
		if p.bf == nil {
			p.bf = bitfield.New(n)
		}
		p.bf.Set(i)
		p.nhave++
		s.picker.PeerHave(i)
		if !s.picker.Have(i) {
			p.wanted++
			s.setInterested(p, true)
		}
		if s.seeding() && p.isSeed(n) {
			return errBothSeeds
		}
	case peerwire.BitfieldMsg:
		// Normally the first message; some clients (aria2) send have-none
		// first and a bitfield later. A later bitfield replaces the old.
		s.forgetPieces(p)
		p.gotBF = true
		p.bf = m.Bitfield
		s.picker.PeerBitfield(p.bf)
		for i := 0; i < n; i++ {
			if p.bf.Has(i) {
				p.nhave++
				if !s.picker.Have(i) {
					p.wanted++
				}
			}
		}
		s.setInterested(p, p.wanted > 0)
		if s.seeding() && p.isSeed(n) {
			return errBothSeeds
		}
	case peerwire.HaveAll:
		s.forgetPieces(p)
		p.gotBF, p.haveAll = true, true
		s.picker.PeerHaveAll()
		p.wanted = n - s.picker.Done()
		s.setInterested(p, p.wanted > 0)
		if s.seeding() {
			return errBothSeeds
		}
	case peerwire.HaveNone:
		p.gotBF = true
	case peerwire.Request:
		return s.serve(p, m)
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
		if p.allowedFast == nil {
			p.allowedFast = map[uint32]bool{}
		}
		if len(p.allowedFast) < 64 {
			p.allowedFast[m.Index] = true
		}
	case peerwire.Extended:
		if m.ExtID == peerwire.ExtHandshakeID {
			if h, err := peerwire.ParseExtHandshake(m.ExtPayload); err == nil && h.Reqq > 0 {
				p.reqq = h.Reqq
			}
		}
	}
	return nil
}

// forgetPieces drops what p announced so far from availability.
func (s *Swarm) forgetPieces(p *peer) {
	s.picker.PeerGone(p.bf, p.haveAll)
	p.bf, p.haveAll, p.nhave, p.wanted = nil, false, 0, 0
}

// unrequest forgets our request k at p so another peer can fetch it.
func (s *Swarm) unrequest(p *peer, k uint64) {
	delete(p.reqs, k)
	piece, begin := int(k>>32), int(uint32(k))
	if _, ok := s.picker.validBlock(piece, begin, s.picker.blockLen(piece, begin/peerwire.BlockSize)); ok {
		s.picker.Unrequest(p.key, Block{piece, begin, s.picker.blockLen(piece, begin/peerwire.BlockSize)})
	}
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
	copy(s.pieceBuf(piece)[begin:], data)
	for _, o := range r.Cancel {
		if q := s.peers[o]; q != nil {
			if _, ok := q.reqs[k]; ok {
				delete(q.reqs, k)
				q.grace++
				s.send(q, peerwire.Message{ID: peerwire.Cancel, Index: uint32(piece), Begin: uint32(begin), Length: uint32(len(data))})
			}
		}
	}
	if r.Complete {
		buf := s.bufs[piece]
		delete(s.bufs, piece)
		s.verifying++
		s.hashIn <- hashJob{piece: piece, buf: buf} // capacity covers every piece that can be in flight
	}
	return nil
}

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
		s.send(p, peerwire.Message{ID: peerwire.Piece, Index: m.Index, Begin: m.Begin, Length: m.Length})
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
		s.send(p, peerwire.Message{ID: peerwire.Reject, Index: m.Index, Begin: m.Begin, Length: m.Length})
	}
	return nil
}

// send queues messages to p. If p's queue is full they are dropped and p
// is marked for dropping (handleBatch and tick drop it: send never drops a
// peer itself, so callers may loop over s.peers).
func (s *Swarm) send(p *peer, ms ...peerwire.Message) {
	if !p.h.out.push(ms...) {
		s.overfull = true
	}
}

// dropOverfull drops and bans every peer whose outbound queue is full.
func (s *Swarm) dropOverfull() {
	s.overfull = false
	for _, p := range s.peers {
		if p != nil && p.h.out.isFull() {
			s.dropPeer(p, errOutQueueFull)
		}
	}
}

func (s *Swarm) setInterested(p *peer, v bool) {
	if p.amInterested == v {
		return
	}
	p.amInterested = v
	id := peerwire.NotInterested
	if v {
		id = peerwire.Interested
	}
	s.send(p, peerwire.Message{ID: id})
}

func (s *Swarm) setChoking(p *peer, choke bool) {
	if p.amChoking == choke {
		return
	}
	p.amChoking = choke
	p.refused = 0
	if !choke {
		s.send(p, peerwire.Message{ID: peerwire.Unchoke})
		return
	}
	dropped := p.h.out.dropUploads(func(peerwire.Message) bool { return true })
	msgs := []peerwire.Message{{ID: peerwire.Choke}}
	if p.fast {
		for _, d := range dropped {
			msgs = append(msgs, peerwire.Message{ID: peerwire.Reject, Index: d.Index, Begin: d.Begin, Length: d.Length})
		}
	}
	s.send(p, msgs...)
}

// maybeUnchoke gives a newly interested peer a free upload slot at once
// instead of making it wait for the next choke round.
func (s *Swarm) maybeUnchoke(p *peer) {
	if !p.amChoking || s.nAdvertised == 0 {
		return
	}
	unchoked := 0
	for _, q := range s.peers {
		if q != nil && !q.amChoking {
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
	for _, p := range s.peers {
		if p == nil {
			continue
		}
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
	for _, p := range s.peers {
		if p != nil {
			s.setChoking(p, !set[p.key])
		}
	}
}

func (s *Swarm) fillAll() {
	for _, p := range s.peers {
		if p != nil {
			s.fill(p)
		}
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
	s.send(p, msgs...)
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
	for _, p := range s.peers {
		if p == nil {
			continue
		}
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
					Length: uint32(s.picker.blockLen(piece, begin/peerwire.BlockSize))})
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
					Length: uint32(s.picker.blockLen(int(k>>32), int(uint32(k))/peerwire.BlockSize))})
			}
			changed = true
		}
		if len(cancels) > 0 {
			s.send(p, cancels...)
		}
	}
	if changed {
		s.fillAll()
	}
}
