package peerswarm

import (
	"context"
	"crypto/sha1"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"flotilla/internal/bitfield"
	"flotilla/internal/loop"
	"flotilla/internal/rate"
	"flotilla/metainfo"
	"flotilla/peerwire"
	"flotilla/swarm"
)

// Swarm is the local peer swarm: it connects to peers, downloads the
// pieces leased to it, verifies them and reports them with their data. It
// serves uploads of pieces the sub-chief tells it are stored (Have).
//
// One goroutine owns all of its state; each connection has a reader
// goroutine (sending batches of messages to the owner) and a writer
// goroutine (draining an outbound queue the owner fills without
// blocking); a small pool verifies SHA-1 off the owner goroutine.
type Swarm struct {
	cfg     swarm.Config
	info    *metainfo.Info
	storage swarm.Storage
	log     *slog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	ln      net.Listener

	newConns chan newConn
	connIn   chan *connBatch
	hashIn   chan hashJob
	hashOut  chan hashJob
	events   chan swarm.WorkerEvent

	loop      *loop.Loop // mailbox and close protocol
	wg        sync.WaitGroup
	slots     ipSlots // incoming connections per address (accept loop)
	hsMu      sync.Mutex
	hsConns   map[net.Conn]struct{} // connections in their handshake; nil once closing
	bans      atomic.Pointer[map[netip.Addr]struct{}]
	distrusts atomic.Pointer[map[netip.Addr]struct{}] // published copy of trust's distrusted set
	status    atomic.Pointer[swarm.WorkerStatus]
	// unreleased counts verified pieces delivered (EventPiece) and not yet
	// released (Release): their buffers count against MaxInFlightBytes.
	unreleased atomic.Int64
	// firstBlock is when the first block request was queued (UnixNano).
	firstBlock atomic.Int64
	// firstPeer is when the first peer completed its handshake (UnixNano):
	// nothing can be requested before.
	firstPeer atomic.Int64

	// Owner state.
	picker      *Picker
	choker      *choker
	trust       *trustBook
	peers       map[peerKey]*peer
	nextKey     peerKey                // keys are never reused (the picker remembers sources)
	gone        map[peerKey]netip.Addr // addresses of departed peers whose blocks may be pending
	npeers      int
	nincoming   int // connected peers that dialed us
	gen         uint32
	cands       map[netip.AddrPort]*candidate
	bufs        map[int][]byte // piece buffers of pieces being downloaded
	suspects    map[int]suspect
	freeBufs    [][]byte
	verifying   int
	outbox      []swarm.WorkerEvent
	advertised  bitfield.Bitfield // pieces stored (bitfield we send)
	nAdvertised int
	delivered   int
	hashFails   int
	timedOut    int64
	// downloaded and wasted are written by the owner goroutine only but
	// read by Status at any time, so that a Status read right after the
	// last piece counts every byte (the rest of the snapshot may be up to
	// StatusInterval old).
	downloaded  atomic.Int64
	wasted      atomic.Int64
	uploadedOld int64 // uploads of closed connections
	downRate    rate.Meter
	upRate      rate.Meter
	lastRates   time.Time
	lastChoke   time.Time
	pickBuf     []Block
	msgBuf      []peerwire.Message
	cancelBuf   []peerKey
	rng         uint64
	overfull    bool // a peer's outbound queue is full (see send)
}

type newConn struct {
	c        net.Conn
	addr     netip.AddrPort
	hs       peerwire.Handshake
	err      error
	outgoing bool
}

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

type hashJob struct {
	piece int
	buf   []byte
	ok    bool
}

// New starts a local peer swarm for cfg (validated by the
// caller). have is the bitfield of pieces already stored.
func New(cfg swarm.Config) (*Swarm, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	info := cfg.Info
	n := info.NumPieces()
	maxActive := int(cfg.MaxInFlightBytes / info.PieceLength)
	s := &Swarm{
		cfg:        cfg,
		info:       info,
		storage:    cfg.Storage,
		log:        cfg.Log().With("swarm", "local"),
		newConns:   make(chan newConn),
		connIn:     make(chan *connBatch, 4),
		hashIn:     make(chan hashJob, maxActive+1),
		hashOut:    make(chan hashJob, maxActive+1),
		events:     make(chan swarm.WorkerEvent, 1),
		loop:       loop.New(),
		cands:      map[netip.AddrPort]*candidate{},
		bufs:       map[int][]byte{},
		suspects:   map[int]suspect{},
		peers:      map[peerKey]*peer{},
		hsConns:    map[net.Conn]struct{}{},
		gone:       map[peerKey]netip.Addr{},
		trust:      newTrustBook(cfg.MaxStrikes),
		advertised: bitfield.New(n),
		rng:        uint64(time.Now().UnixNano()),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.picker = newPicker(pickerGeometry{NumPieces: n, PieceLength: info.PieceLength, TotalLength: info.Length,
		BlockSize: peerwire.BlockSize}, s.rng)
	s.picker.MaxActive = maxActive
	s.choker = newChoker(cfg.UploadSlots, cfg.OptimisticInterval, s.rng)
	empty := map[netip.Addr]struct{}{}
	s.bans.Store(&empty)
	s.distrusts.Store(&empty)
	have := bitfield.Bitfield(cfg.Storage.Have())
	for i := 0; i < n; i++ {
		if have.Has(i) {
			s.picker.SetDone(i)
			s.advertised.Set(i)
			s.nAdvertised++
		}
	}
	s.ln = cfg.Listener
	if s.ln == nil && cfg.ListenAddr != "" {
		l, err := net.Listen("tcp", cfg.ListenAddr)
		if err != nil {
			s.cancel()
			return nil, fmt.Errorf("swarm: listen: %w", err)
		}
		s.ln = l
	}
	hashers := cfg.Hashers
	if hashers == 0 {
		hashers = min(runtime.NumCPU(), 4)
	}
	for range hashers {
		s.wg.Add(1)
		go s.hashLoop()
	}
	if s.ln != nil {
		s.wg.Add(1)
		go s.acceptLoop(s.ln)
	}
	s.publish(time.Now())
	go s.run()
	return s, nil
}

// Addr is the listening address, or nil.
func (s *Swarm) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Name implements Worker.
func (s *Swarm) Name() string { return "local" }

// Events implements Worker.
func (s *Swarm) Events() <-chan swarm.WorkerEvent { return s.events }

// Status implements Worker.
func (s *Swarm) Status() swarm.WorkerStatus {
	st := *s.status.Load()
	st.Downloaded, st.Wasted = s.downloaded.Load(), s.wasted.Load()
	if ns := s.firstBlock.Load(); ns != 0 {
		st.FirstRequest = time.Unix(0, ns)
	}
	if ns := s.firstPeer.Load(); ns != 0 {
		st.FirstPeer = time.Unix(0, ns)
	}
	return st
}

// Assign implements Worker.
func (s *Swarm) Assign(pieces []int) {
	pieces = append([]int(nil), pieces...)
	s.loop.Post(func() {
		s.picker.Lease(pieces)
		s.fillAll()
	})
}

// Revoke implements Worker.
func (s *Swarm) Revoke(pieces []int, force bool) {
	pieces = append([]int(nil), pieces...)
	s.loop.Post(func() {
		got := s.picker.Revoke(pieces, force)
		if force {
			for _, i := range got {
				s.abandon(i)
			}
		}
		s.outbox = append(s.outbox, swarm.WorkerEvent{Kind: swarm.EventRevoked, Pieces: got})
	})
}

// Have implements Worker.
func (s *Swarm) Have(pieces []int) {
	pieces = append([]int(nil), pieces...)
	s.loop.Post(func() {
		for _, i := range pieces {
			s.stored(i)
		}
	})
}

// AddPeers implements Worker.
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

// Close implements Worker: it closes every connection and waits for all
// goroutines.
func (s *Swarm) Close() error {
	s.loop.CloseAndWait()
	return nil
}

func (s *Swarm) isBanned(a netip.Addr) bool {
	_, ok := (*s.bans.Load())[a.Unmap()]
	return ok
}

func (s *Swarm) hashLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.loop.Closing():
			return
		case j := <-s.hashIn:
			sum := sha1.Sum(j.buf)
			j.ok = sum == s.info.PieceHash(j.piece)
			select {
			case s.hashOut <- j:
			case <-s.loop.Closing():
				return
			}
		}
	}
}

func (s *Swarm) run() {
	defer s.loop.Stopped()
	tick := time.NewTicker(s.cfg.StatusInterval)
	defer tick.Stop()
	for {
		var evCh chan swarm.WorkerEvent
		var first swarm.WorkerEvent
		if len(s.outbox) > 0 {
			evCh, first = s.events, s.outbox[0]
		}
		select {
		case <-s.loop.Closing():
			s.shutdown()
			return
		case <-s.loop.Wake():
			s.loop.RunPosted()
		case b := <-s.connIn:
			s.handleBatch(b)
		case nc := <-s.newConns:
			s.register(nc)
		case j := <-s.hashOut:
			s.hashed(j)
		case evCh <- first:
			s.outbox[0] = swarm.WorkerEvent{}
			s.outbox = s.outbox[1:]
			if len(s.outbox) == 0 {
				s.outbox = nil
			}
		case now := <-tick.C:
			s.tick(now)
		}
		if s.overfull {
			s.dropOverfull()
		}
	}
}

func (s *Swarm) shutdown() {
	s.cancel()
	s.abortHandshakes()
	if s.ln != nil {
		s.ln.Close()
	}
	for _, p := range s.peers {
		if p != nil {
			p.h.close()
		}
	}
	// Drain connection traffic so that no goroutine stays blocked, then
	// wait for all of them.
	waited := make(chan struct{})
	go func() { s.wg.Wait(); close(waited) }()
	for {
		select {
		case <-waited:
			close(s.events)
			s.publish(time.Now())
			return
		case b := <-s.connIn:
			releaseBatch(b)
		case nc := <-s.newConns:
			if nc.c != nil {
				nc.c.Close()
			}
		}
	}
}

func releaseBatch(b *connBatch) {
	for i := range b.evs {
		if b.evs[i].block != nil {
			blockPool.Put(b.evs[i].block)
		}
		b.evs[i] = connEvent{}
	}
	b.evs = b.evs[:0]
	b.h, b.err = nil, nil
	batchPool.Put(b)
}

func (s *Swarm) tick(now time.Time) {
	if now.Sub(s.lastRates) >= 250*time.Millisecond {
		s.lastRates = now
		s.downRate.Tick(now)
		s.upRate.Tick(now)
		for _, p := range s.peers {
			if p == nil {
				continue
			}
			p.down.Tick(now)
			up := p.h.uploaded.Load()
			p.up.Add(int(up - p.lastUp))
			s.upRate.Add(int(up - p.lastUp))
			if up != p.lastUp {
				p.lastPayload = now
			}
			p.lastUp = up
			p.up.Tick(now)
		}
		s.fillAll()
	}
	s.checkTimeouts(now)
	s.dropOverfull() // also catches queues filled outside send
	s.pruneGone()
	if now.Sub(s.lastChoke) >= s.cfg.ChokeInterval {
		s.lastChoke = now
		s.chokeRound(now)
	}
	s.dialMore(now)
	s.publish(now)
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
		if dialing >= s.cfg.MaxDialing || s.npeers+dialing >= s.cfg.MaxPeers {
			return
		}
		if c.dialing || c.self || now.Before(c.next) || s.connectedTo(a) || s.isBanned(a.Addr()) {
			continue
		}
		c.dialing = true
		dialing++
		s.wg.Add(1)
		go s.dial(a)
	}
}

func (s *Swarm) connectedTo(a netip.AddrPort) bool {
	for _, p := range s.peers {
		if p != nil && p.addr == a {
			return true
		}
	}
	return false
}

func (s *Swarm) seeding() bool { return s.nAdvertised == s.info.NumPieces() }

func (s *Swarm) publish(now time.Time) {
	st := swarm.WorkerStatus{
		Name: "local", Downloaded: s.downloaded.Load(), Wasted: s.wasted.Load(),
		DownRate: s.downRate.Rate(), UpRate: s.upRate.Rate(),
		Delivered: s.delivered, HashFails: s.hashFails, TimedOut: s.timedOut, Banned: s.trust.Len(), Updated: now,
		Active: s.picker.ActiveCount() + s.verifying,
	}
	up := s.uploadedOld
	for _, p := range s.peers {
		if p == nil {
			continue
		}
		st.Peers++
		if p.isSeed(s.info.NumPieces()) {
			st.Seeds++
		}
		st.Outstanding += len(p.reqs)
		if p.snubbed {
			st.Snubbed++
		}
		up += p.h.uploaded.Load()
	}
	st.Uploaded = up
	for i := range s.picker.leased {
		if s.picker.leased[i] {
			st.Leased++
		}
	}
	s.status.Store(&st)
}

// stored handles the sub-chief's notice that piece i is on disk.
func (s *Swarm) stored(i int) {
	if i < 0 || i >= s.info.NumPieces() || s.advertised.Has(i) {
		return
	}
	if !s.picker.Have(i) {
		s.abandon(i)
		s.picker.SetDone(i)
		s.pieceDone(i)
	}
	s.advertised.Set(i)
	s.nAdvertised++
	for _, p := range s.peers {
		if p != nil && !p.has(i) {
			s.send(p, peerwire.Message{ID: peerwire.Have, Index: uint32(i)})
		}
	}
	if s.seeding() {
		// Both sides complete: nothing to trade.
		for _, p := range s.peers {
			if p != nil && p.isSeed(s.info.NumPieces()) {
				s.dropPeer(p, errBothSeeds)
			}
		}
	}
}

// abandon cancels every outstanding request for piece i and frees its
// buffer (revoked, or obtained elsewhere).
func (s *Swarm) abandon(i int) {
	for _, p := range s.peers {
		if p == nil {
			continue
		}
		var msgs []peerwire.Message
		for k := range p.reqs {
			if int(k>>32) == i {
				delete(p.reqs, k)
				p.grace++
				msgs = append(msgs, peerwire.Message{ID: peerwire.Cancel, Index: uint32(i), Begin: uint32(k), Length: uint32(s.picker.blockLen(i, int(uint32(k))/peerwire.BlockSize))})
			}
		}
		if len(msgs) > 0 {
			s.send(p, msgs...)
		}
	}
	if b, ok := s.bufs[i]; ok {
		delete(s.bufs, i)
		s.releaseBuf(b)
	}
	if sus, ok := s.suspects[i]; ok {
		delete(s.suspects, i)
		s.releaseBuf(sus.buf)
	}
}

// pieceDone updates interest once piece i is ours.
func (s *Swarm) pieceDone(i int) {
	for _, p := range s.peers {
		if p != nil && p.has(i) {
			p.wanted--
			if p.wanted <= 0 {
				s.setInterested(p, false)
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
		srcs = s.picker.BlockSources(j.piece, nil)
	}
	s.picker.Verified(j.piece, j.ok, nil)
	if j.ok {
		s.delivered++
		s.pieceDone(j.piece)
		if sus, ok := s.suspects[j.piece]; ok {
			delete(s.suspects, j.piece)
			if guilty := blame(sus.buf, j.buf, sus.from, peerwire.BlockSize, nil); len(guilty) > 0 {
				// The guilty keep the strike of the failure; the others'
				// blocks proved right, so theirs is taken back.
				s.log.Info("peers sent bad blocks", "piece", j.piece, "peers", guilty)
				s.absolve(sus.from, guilty)
			}
			s.releaseBuf(sus.buf)
		}
		s.unreleased.Add(1)
		s.outbox = append(s.outbox, swarm.WorkerEvent{Kind: swarm.EventPiece, Piece: j.piece, Data: j.buf, Verified: true})
		s.fillAll()
		return
	}
	s.hashFails++
	s.wasted.Add(int64(len(j.buf)))
	from := make([]netip.Addr, len(srcs))
	var distinct []netip.Addr
	for b, k := range srcs {
		if a, ok := s.sourceAddr(k); ok {
			from[b] = a
			if !slices.Contains(distinct, from[b]) {
				distinct = append(distinct, from[b])
			}
		}
	}
	s.log.Info("piece failed hash check", "piece", j.piece, "contributors", distinct)
	// Every contributor is distrusted (a repeat bans it); when the piece
	// later verifies, blame takes the strike back from those whose blocks
	// were right.
	distrusted, banned := s.trust.HashFailed(distinct, nil, nil)
	if len(distrusted) > 0 {
		s.log.Info("distrusted peers", "addrs", distrusted)
		s.setDistrust(distrusted, true)
	}
	if len(banned) > 0 {
		s.ban(banned...)
	}
	_, already := s.suspects[j.piece]
	if len(distinct) > 1 && !already && len(s.suspects) < maxSuspects {
		s.suspects[j.piece] = suspect{buf: j.buf, from: from}
	} else {
		s.releaseBuf(j.buf)
	}
	s.fillAll()
}

// absolve takes back a strike from each distinct contributor in from that
// is not guilty, and trusts again those left with none.
func (s *Swarm) absolve(from, guilty []netip.Addr) {
	var seen, trusted []netip.Addr
	for _, a := range from {
		if !a.IsValid() || slices.Contains(guilty, a) || slices.Contains(seen, a) {
			continue
		}
		seen = append(seen, a)
		if s.trust.Absolve(a) {
			trusted = append(trusted, a)
		}
	}
	if len(trusted) > 0 {
		s.log.Info("peers trusted again", "addrs", trusted)
		s.setDistrust(trusted, false)
	}
}

// setDistrust distrusts (or trusts again) addresses: the picker restricts
// (or frees) their connected peers, and the published set is renewed.
// Runs once per change of trust, O(peers).
func (s *Swarm) setDistrust(addrs []netip.Addr, distrust bool) {
	for _, p := range s.peers {
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
	if p := s.peers[k]; p != nil {
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

// ban bans addresses and drops their connections.
func (s *Swarm) ban(addrs ...netip.Addr) {
	m := maps.Clone(*s.bans.Load())
	for _, a := range addrs {
		a = a.Unmap()
		s.trust.Ban(a)
		m[a] = struct{}{}
		s.log.Warn("banned peer", "addr", a)
	}
	s.bans.Store(&m)
	s.publishDistrust()
	for _, p := range s.peers {
		if p != nil && s.isBanned(p.addr.Addr()) {
			s.dropPeer(p, ErrBanned)
		}
	}
}

// Release implements Worker: one piece it delivered (EventPiece) was
// taken off its hands — handed to Storage, shipped, or dropped — so its
// buffer no longer counts against MaxInFlightBytes. Whoever consumes the
// events must call it once per EventPiece, or the swarm stalls once
// MaxInFlightBytes of delivered pieces are outstanding. Safe from any
// goroutine; never blocks.
func (s *Swarm) Release(int) {
	s.unreleased.Add(-1)
	s.loop.Post(s.fillAll)
}

// Banned reports whether an address is banned (for tests and status).
func (s *Swarm) Banned(a netip.Addr) bool { return s.isBanned(a) }

func (s *Swarm) pieceBuf(i int) []byte {
	if b, ok := s.bufs[i]; ok {
		return b
	}
	n := int(s.info.PieceLen(i))
	var b []byte
	if bp, ok := s.storage.(swarm.BufferPool); ok {
		b = bp.GetBuffer(i)
	} else {
		for k := len(s.freeBufs) - 1; k >= 0; k-- {
			if cap(s.freeBufs[k]) >= n {
				b = s.freeBufs[k][:n]
				s.freeBufs = append(s.freeBufs[:k], s.freeBufs[k+1:]...)
				break
			}
		}
	}
	if len(b) != n {
		b = make([]byte, n)
	}
	s.bufs[i] = b
	return b
}

// releaseBuf gives back a piece buffer that will not reach Storage.
func (s *Swarm) releaseBuf(b []byte) {
	if bp, ok := s.storage.(swarm.BufferPool); ok {
		bp.PutBuffer(b)
		return
	}
	if len(s.freeBufs) < 8 {
		s.freeBufs = append(s.freeBufs, b[:cap(b)])
	}
}
