package peerswarm

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
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
// One goroutine (run) owns all of its state, kept in sub-owners: the
// peer table, the requester, the uploader, the guard and the dialer (see
// the package doc for what each owns). Each connection has a reader
// goroutine (sending batches of messages to the owner) and a writer
// goroutine (draining an outbound queue the owner fills without
// blocking); a small pool verifies SHA-1 off the owner goroutine. What
// runs off the owner goroutine is the wire (wire.go).
type Swarm struct {
	cfg     swarm.Config
	info    *metainfo.Info
	storage swarm.Storage
	log     *slog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	ln      net.Listener

	events chan swarm.WorkerEvent
	// wire is everything that runs off the owner goroutine (wire.go).
	wire *wire

	loop   *loop.Loop // mailbox and close protocol
	wg     sync.WaitGroup
	status atomic.Pointer[swarm.WorkerStatus]
	// unreleased counts verified pieces delivered (EventPiece) and not yet
	// released (Release): their buffers count against MaxInFlightBytes.
	unreleased atomic.Int64
	// firstPeer is when the first peer completed its handshake (UnixNano):
	// nothing can be requested before.
	firstPeer atomic.Int64

	// Owner state: the sub-owners,
	peers  *peerTable // connected peers, admission, send (table.go)
	req    *requester // the Picker and our requests (requests.go, interest.go)
	up     *uploader  // what we advertise, choking, serving (upload.go)
	guard  *guard     // trust, bans, departed peers' addresses (guard.go)
	dialer *dialer    // candidate addresses and dials (candidates.go)
	// and the pieces on their way from the requester to the sub-chief:
	bufs      pieceBuffers        // buffers of the pieces being downloaded (buffers.go)
	suspects  map[int]suspect     // failed pieces kept for blame (verify.go)
	verifying int                 // pieces in the SHA-1 pool
	outbox    []swarm.WorkerEvent // events waiting for the sub-chief (Events)
	delivered int
	hashFails int
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
	rng         uint64
}

type newConn struct {
	c        net.Conn
	addr     netip.AddrPort
	hs       peerwire.Handshake
	err      error
	outgoing bool
	// reached: an outgoing connection's TCP connect succeeded (the peer is
	// up; a failure was in the handshake).
	reached bool
	// greeted: handed over (Adopt) with our extension handshake and
	// HaveNone already sent.
	greeted bool
}

// New validates cfg and starts a local peer swarm for it: the pieces
// Storage already has (Storage.Have) are advertised and served, and it
// accepts peers on cfg.Listener, or on cfg.ListenAddr when that is set
// instead (neither: it only dials). Hand it to swarm.New.
func New(cfg swarm.Config) (*Swarm, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	info := cfg.Info
	n := info.NumPieces()
	maxActive := int(cfg.MaxInFlightBytes / info.PieceLength)
	have := bitfield.Bitfield(cfg.Storage.Have())
	missing := 0
	for i := range n {
		if !have.Has(i) {
			missing++
		}
	}
	// The pieces that can be verified at once: no more than are missing
	// (a seeder's swarm has none, so neither hash queue nor hashers).
	hashQueue := min(maxActive, missing) + 1
	s := &Swarm{
		cfg:      cfg,
		info:     info,
		storage:  cfg.Storage,
		log:      cfg.Log().With("swarm", "local"),
		events:   make(chan swarm.WorkerEvent, 1),
		loop:     loop.New(),
		bufs:     newPieceBuffers(info, cfg.Storage),
		suspects: map[int]suspect{},
		peers:    newPeerTable(cfg.MaxPeers),
		rng:      uint64(time.Now().UnixNano()),
	}
	s.guard = newGuard(cfg.MaxStrikes, s.log)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wire = &wire{cfg: cfg, info: info, storage: cfg.Storage, log: s.log, ctx: s.ctx,
		closing: s.loop.Closing(), wg: &s.wg,
		newConns: make(chan newConn),
		connIn:   make(chan *connBatch, 4),
		hashIn:   make(chan hashJob, hashQueue),
		hashOut:  make(chan hashJob, hashQueue),
		hsConns:  map[net.Conn]struct{}{},
		bans:     s.guard.bans,
	}
	s.dialer = newDialer(cfg.MaxDialing, cfg.MaxPeers, s.guard.bans, func(a netip.AddrPort, plainFirst bool) {
		s.wg.Add(1)
		go s.wire.dial(a, plainFirst)
	})
	pk := newPicker(pickerGeometry{NumPieces: n, PieceLength: info.PieceLength, TotalLength: info.Length,
		BlockSize: peerwire.BlockSize}, s.rng)
	pk.MaxActive = maxActive
	s.req = newRequester(cfg, pk, n, s.log, func() int { return s.verifying + int(s.unreleased.Load()) + len(s.suspects) })
	s.up = newUploader(cfg.UploadSlots, cfg.MaxUploadQueue, cfg.ChokeInterval,
		newChoker(cfg.UploadSlots, cfg.OptimisticInterval, s.rng), n)
	s.up.infoBytes = cfg.InfoBytes
	s.up.pex = s.pexEnabled()
	for i := 0; i < n; i++ {
		if have.Has(i) {
			pk.SetDone(i)
			s.up.advertise(i, s.peers)
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
	if s.ln != nil {
		if ap, err := netip.ParseAddrPort(s.ln.Addr().String()); err == nil {
			s.up.port = int(ap.Port())
		}
	}
	hashers := cfg.Hashers
	if hashers == 0 {
		hashers = min(runtime.NumCPU(), 4)
	}
	if missing == 0 {
		hashers = 0
	}
	for range hashers {
		s.wg.Add(1)
		go s.wire.hashLoop()
	}
	if s.ln != nil {
		s.wg.Add(1)
		go s.wire.acceptLoop(s.ln)
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

// Name implements swarm.Worker.
func (s *Swarm) Name() string { return "local" }

// Events implements swarm.Worker.
func (s *Swarm) Events() <-chan swarm.WorkerEvent { return s.events }

// Status implements swarm.Worker.
func (s *Swarm) Status() swarm.WorkerStatus {
	st := *s.status.Load()
	st.Downloaded, st.Wasted = s.downloaded.Load(), s.wasted.Load()
	if ns := s.req.firstBlock.Load(); ns != 0 {
		st.FirstRequest = time.Unix(0, ns)
	}
	if ns := s.firstPeer.Load(); ns != 0 {
		st.FirstPeer = time.Unix(0, ns)
	}
	return st
}

// Assign implements swarm.Worker.
func (s *Swarm) Assign(pieces []int) {
	pieces = append([]int(nil), pieces...)
	s.loop.Post(func() {
		s.req.picker.Lease(pieces)
		s.req.fillAll(s.peers)
	})
}

// Revoke implements swarm.Worker.
func (s *Swarm) Revoke(pieces []int, force bool) {
	pieces = append([]int(nil), pieces...)
	s.loop.Post(func() {
		got, kept := s.req.picker.Revoke(pieces, force)
		if force {
			for _, i := range got {
				s.abandon(i)
			}
		}
		s.outbox = append(s.outbox, swarm.WorkerEvent{Kind: swarm.EventRevoked, Pieces: got, Kept: kept})
	})
}

// Have implements swarm.Worker.
func (s *Swarm) Have(pieces []int) {
	pieces = append([]int(nil), pieces...)
	s.loop.Post(func() {
		for _, i := range pieces {
			s.stored(i)
		}
	})
}

// SetMaxPeers changes the swarm's peer cap (swarm.Config.MaxPeers) while
// it runs; n below 1 counts as 1. The incoming quota (three quarters of
// the cap) follows. Lowering it drops the peers over the new caps at once,
// the least useful first (those sending us the least, then those we send
// the least, then the longest silent): a node sharing its peers among its
// jobs (package delegate) keeps its total within its budget rather than
// waiting for peers to leave. Raising it drops nobody; dials and incoming
// peers fill the room. Status reports the cap in force (MaxPeers) once it
// applies. Safe from any goroutine; never blocks.
func (s *Swarm) SetMaxPeers(n int) {
	n = max(1, n)
	s.loop.Post(func() {
		if n == s.peers.maxPeers {
			return
		}
		drop := s.peers.setMaxPeers(n)
		s.dialer.maxPeers = n
		for _, p := range drop {
			s.dropPeer(p, errPeerCapLowered)
		}
		now := time.Now()
		s.dialer.dialMore(now, s.up.seeding(), s.peers)
		s.publish(now)
	})
}

// Close implements swarm.Worker: it closes every connection and waits for all
// goroutines.
func (s *Swarm) Close() error {
	s.loop.CloseAndWait()
	return nil
}

func (s *Swarm) run() {
	defer s.loop.Stopped()
	tick := loop.NewPacer(s.cfg.StatusInterval, s.cfg.IdleStatusInterval)
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
		case b := <-s.wire.connIn:
			s.handleBatch(b)
		case nc := <-s.wire.newConns:
			s.register(nc)
		case j := <-s.wire.hashOut:
			s.hashed(j)
		case evCh <- first:
			s.outbox[0] = swarm.WorkerEvent{}
			s.outbox = s.outbox[1:]
			if len(s.outbox) == 0 {
				s.outbox = nil
			}
		case now := <-tick.C():
			s.tick(now)
			tick.Ticked(s.idle())
			continue
		}
		tick.Wake()
		if s.peers.overfull {
			s.dropOverfull()
		}
	}
}

func (s *Swarm) shutdown() {
	s.cancel()
	s.wire.abortHandshakes()
	if s.ln != nil {
		s.ln.Close()
	}
	for p := range s.peers.all() {
		p.h.close()
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
		case b := <-s.wire.connIn:
			releaseBatch(b)
		case nc := <-s.wire.newConns:
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

// idle reports whether the swarm has nothing to do until an event comes:
// it seeds, without peers, pieces being verified, events for the
// sub-chief or upload to measure.
func (s *Swarm) idle() bool {
	return s.up.seeding() && s.peers.n == 0 && s.verifying == 0 && len(s.outbox) == 0 &&
		s.downRate.Rate() < 1 && s.upRate.Rate() < 1
}

func (s *Swarm) tick(now time.Time) {
	if now.Sub(s.lastRates) >= 250*time.Millisecond {
		s.lastRates = now
		s.downRate.Tick(now)
		s.upRate.Tick(now)
		for p := range s.peers.all() {
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
		s.req.fillAll(s.peers)
		s.req.nudgeIfChoked(now, s.peers)
	}
	s.req.checkTimeouts(now, s.peers)
	s.dropOverfull() // also catches queues filled outside send
	s.guard.pruneGone(s.req.picker)
	s.up.tick(now, s.peers)
	s.dialer.dialMore(now, s.up.seeding(), s.peers)
	s.pexTick(now)
	s.publish(now)
}

func (s *Swarm) publish(now time.Time) {
	st := swarm.WorkerStatus{
		Name: "local", MaxPeers: s.peers.maxPeers, Downloaded: s.downloaded.Load(), Wasted: s.wasted.Load(),
		DownRate: s.downRate.Rate(), UpRate: s.upRate.Rate(),
		Delivered: s.delivered, HashFails: s.hashFails, TimedOut: s.req.timedOut, Banned: s.guard.trust.Len(), Updated: now,
		Active: s.req.picker.ActiveCount() + s.verifying,
	}
	up := s.uploadedOld
	for p := range s.peers.all() {
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
	for i := range s.req.picker.leased {
		if s.req.picker.leased[i] {
			st.Leased++
		}
	}
	s.status.Store(&st)
}

// stored handles the sub-chief's notice that piece i is on disk.
func (s *Swarm) stored(i int) {
	if i < 0 || i >= s.info.NumPieces() || s.up.has(i) {
		return
	}
	if !s.req.picker.Have(i) {
		s.abandon(i)
		s.req.picker.SetDone(i)
		s.req.pieceDone(s.peers, i)
	}
	s.up.advertise(i, s.peers)
	if s.up.seeding() {
		// Both sides complete: nothing to trade.
		for p := range s.peers.all() {
			if p.isSeed(s.info.NumPieces()) {
				s.dropPeer(p, errBothSeeds)
			}
		}
	}
}

// abandon cancels every outstanding request for piece i and frees its
// buffer (revoked, or obtained elsewhere).
func (s *Swarm) abandon(i int) {
	s.req.cancelPiece(s.peers, i)
	s.bufs.drop(i)
	if sus, ok := s.suspects[i]; ok {
		delete(s.suspects, i)
		s.bufs.release(sus.buf)
	}
}

// Release implements swarm.Worker: one piece it delivered (EventPiece) was
// taken off its hands — handed to Storage, shipped, or dropped — so its
// buffer no longer counts against MaxInFlightBytes. Whoever consumes the
// events must call it once per EventPiece, or the swarm stalls once
// MaxInFlightBytes of delivered pieces are outstanding. Safe from any
// goroutine; never blocks.
func (s *Swarm) Release(int) {
	s.unreleased.Add(-1)
	s.loop.Post(func() { s.req.fillAll(s.peers) })
}
