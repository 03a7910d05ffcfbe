package swarm

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"flotilla/internal/bitfield"
	"flotilla/internal/loop"
	"flotilla/watchdog"
)

// ErrClosed is the reason recorded when Close stops a download. Err and
// Status.Err report failures only, so they never return it; it is
// exported so callers can treat it as "not a failure" if it ever reaches
// them wrapped.
var ErrClosed = errors.New("swarm: download closed")

// Status is a snapshot of a download, produced by the sub-chief's
// goroutine; reading it never blocks.
type Status struct {
	Pieces   int // pieces in the torrent
	Missing  int // not leased to any worker
	Active   int // leased, not yet verified
	Verified int // verified, not yet durably written
	Written  int // durably written
	// BytesDone is the length of the written pieces; Length the torrent's.
	BytesDone, Length int64
	// StorageWait is the total time the sub-chief waited on Storage.Submit
	// (back-pressure from a disk slower than the network).
	StorageWait          time.Duration
	Downloaded, Uploaded int64   // payload bytes over all workers
	DownRate, UpRate     float64 // bytes/s over all workers
	Peers, Seeds         int
	Workers              []WorkerStatus
	// FirstRequest is when a worker first queued a block request (zero:
	// not yet), the earliest over the workers' statuses: the start-up
	// latency the user waits through.
	FirstRequest time.Time
	// FirstPeer is when a worker's first peer completed its handshake
	// (zero: not yet), the earliest over the workers; FirstRequest -
	// FirstPeer is our own reaction time, the rest of the start-up waits
	// on trackers and peers.
	FirstPeer time.Time
	// Returned counts the pieces taken back from workers' leases into
	// the pool, to be leased again (reassigned), by why.
	Returned LeaseReturns
	// EndGame counts the end game across workers: pieces leased to a
	// second worker while another was downloading them (balance.go).
	EndGame  EndGame
	Complete bool
	Err      error
	Updated  time.Time
}

// LeaseReturns counts pieces returned from a worker's lease to the pool.
type LeaseReturns struct {
	Missed   int // the worker missed its lease deadline (leaseclock.go)
	Gone     int // the worker left, failed or lost its session
	BadPiece int // the worker delivered the piece and it failed the re-hash
	Revoked  int // the worker gave them back when asked (rebalancing, end game)
}

// EndGame counts the end game across workers. A duplicated piece is leased
// to a second worker while its first holder is known to be downloading it
// (or, among the last pieces, merely holds it);
// whichever copy arrives first is kept and the other holder is told to
// drop the piece (Revoke with force), which cancels its requests.
type EndGame struct {
	// Duplicated is how many extra copies were leased, and
	// DuplicatedBytes their length: at most this much was fetched twice
	// (a cancelled copy is usually only part fetched).
	Duplicated      int
	DuplicatedBytes int64
	// Cancelled counts the copies revoked because another copy arrived
	// first, and those a worker gave back (a steal) while another worker
	// held the piece too (an unstarted last piece duplicated to an idle
	// worker, refill).
	Cancelled int
	// Twice counts the copies that arrived after another copy was
	// accepted (dropped: fetched twice in full), and TwiceBytes their
	// length.
	Twice      int
	TwiceBytes int64
}

// Total is every piece returned.
func (r LeaseReturns) Total() int { return r.Missed + r.Gone + r.BadPiece + r.Revoked }

// Download is the sub-chief of one torrent download: it leases pieces to
// its workers (the one given to New, normally the local peer swarm, and
// any added with AddWorker), re-verifies pieces from untrusted workers, hands verified
// pieces to Storage, tells every worker what is stored, and reports
// Status. One goroutine owns its state.
type Download struct {
	cfg     Config
	log     *slog.Logger
	storage Storage
	n       int

	ctx    context.Context
	cancel context.CancelFunc

	// wd is the lease deadlines' clock (leaseclock.go): Config.Watchdog,
	// or a private one (ownWD) whose alerts run reads and Close closes.
	wd     *watchdog.Watchdog
	ownWD  bool
	alerts <-chan watchdog.Alert

	fanIn chan slotEvent
	// The storer goroutine hands pieces to Storage so that a slow disk
	// throttles the workers (they wait for Release) without ever blocking
	// the sub-chief's loop.
	toStore  chan storeReq
	storedCh chan storeRes

	complete chan struct{}
	stopCh   chan struct{} // closed when the workers are being stopped
	loop     *loop.Loop    // mailbox and close protocol
	wg       sync.WaitGroup

	status     atomic.Pointer[Status]
	err        atomic.Pointer[error]
	uploaded   atomic.Int64
	downloaded atomic.Int64
	left       atomic.Int64

	// Owner state.
	lb        *leaseBook
	slots     []*workerSlot
	written   []bool
	nWritten  int
	nVerified int // verified (submitted) pieces, written or not
	bytesDone int64
	peers     *peerBook // addresses from the trackers (peerbook.go)
	// expected is how many workers are being started and not yet added
	// (ExpectWorkers): a joining worker's share of the peers counts them.
	expected int
	// submitWait is the time spent blocked handing pieces to Storage.
	submitWait   time.Duration
	pendingStore []storeReq // verified pieces waiting for the storer
	// storing counts the pieces handed to the storer and not yet answered
	// (stored): their release is still owed to their workers.
	storing int
	isDone  bool
	stopped bool
	// quarantined holds the identities of workers caught delivering bad
	// pieces (subchief_quarantine.go).
	quarantined map[string]bool
	returned    LeaseReturns
	endGame     EndGame
	sources     *pieceSources // who delivered each piece (piecesources.go)
}

// New validates cfg and starts the sub-chief with its first worker, local
// (normally the local peer swarm, built by the caller for the same cfg).
// The caller states what local is by handing it here: its Verified flag is
// believed (its pieces are stored without a re-hash), and if it stops, the
// download fails. The Download owns local from here on and closes it, also
// when New fails.
func New(cfg Config, local Worker) (*Download, error) {
	if local == nil {
		return nil, fmt.Errorf("%w: no worker", ErrConfig)
	}
	if err := cfg.Validate(); err != nil {
		local.Close()
		return nil, err
	}
	wd, ownWD := cfg.Watchdog, false
	if wd == nil {
		var err error
		if wd, err = privateWatchdog(); err != nil {
			local.Close()
			return nil, err
		}
		ownWD = true
	}
	n := cfg.Info.NumPieces()
	have := cfg.Storage.Have()
	hasPiece := bitfield.Bitfield(have).Has
	d := &Download{
		cfg: cfg, log: cfg.Log().With("swarm", "subchief"), storage: cfg.Storage, n: n,
		wd: wd, ownWD: ownWD,
		fanIn:    make(chan slotEvent, 1),
		toStore:  make(chan storeReq),
		storedCh: make(chan storeRes, 1),
		loop:     loop.New(),
		complete: make(chan struct{}),
		stopCh:   make(chan struct{}),
		written:  make([]bool, n),
		peers:    newPeerBook(maxKnownPeers),
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	if ownWD {
		d.alerts = wd.Alerts()
	}
	d.lb = newLeaseBook(n, hasPiece, uint64(time.Now().UnixNano()))
	d.sources = newPieceSources(n, hasPiece)
	for i := 0; i < n; i++ {
		if hasPiece(i) {
			d.written[i] = true
			d.nWritten++
			d.nVerified++
			d.bytesDone += cfg.Info.PieceLen(i)
		}
	}
	d.addSlot(local, true)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		storePieces(d.ctx, d.storage, d.toStore, d.storedCh, d.stopCh)
	}()
	if d.nWritten == n {
		d.isDone = true
		close(d.complete)
	}
	d.publish(time.Now())
	go d.run()
	return d, nil
}

// AddPeers records peer addresses and spreads them across the workers:
// each new one goes to one worker (peerbook.go). It never blocks.
func (d *Download) AddPeers(addrs []netip.AddrPort) {
	addrs = append([]netip.AddrPort(nil), addrs...)
	d.loop.Post(func() { d.addPeers(addrs) })
}

// addPeers is AddPeers on the owner goroutine.
func (d *Download) addPeers(addrs []netip.AddrPort) {
	recs := make([]*peerRec, 0, len(addrs))
	for _, a := range addrs {
		a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
		if a.IsValid() && a.Port() != 0 {
			recs = append(recs, d.peers.Add(a))
		}
	}
	d.peers.Deal(recs, d.slots)
}

// AddWorker adds a worker whose pieces are always re-verified (a remote
// swarm) and which may stop without failing the download; the Download
// owns it from here on. It gets work and its share of the known peers at
// once. It never blocks.
func (d *Download) AddWorker(w Worker) {
	d.loop.Post(func() {
		if d.stopped {
			go w.Close()
			return
		}
		if d.refuseQuarantined(w) {
			return
		}
		s := d.addSlot(w, false)
		if s.idx < 0 {
			return
		}
		if bu, ok := w.(BufferUser); ok {
			if bp, ok := d.storage.(BufferPool); ok {
				bu.UseBuffers(bp)
			}
		}
		d.refill(s, time.Now(), true)
		d.peers.Join(s, d.slots, d.cfg.MaxPeers, d.expected)
	})
}

// ExpectWorkers says that n workers are being started and will be added
// soon (a coordinator opening sessions to the swarm nodes it knows; n
// replaces the previous figure). A worker that joins meanwhile gets its
// share of the known peers counted over the workers alive and those
// expected: before, the first of eight nodes to join a swarm of 8 seeders
// got 5 of the 9 addresses known, the last 2 that the others were
// already dialing, and as an aria2c seeder takes three connections a
// second, that node got its first block a second after the others. It
// never blocks.
func (d *Download) ExpectWorkers(n int) {
	d.loop.Post(func() { d.expected = max(n, 0) })
}

// RemoveWorker closes a worker added with AddWorker (its node left the
// cluster, or is no longer needed); its lease returns to the pool once its
// events end. It never blocks; an unknown or finished worker is ignored.
func (d *Download) RemoveWorker(w Worker) {
	d.loop.Post(func() {
		for _, s := range d.slots {
			if s.idx >= 0 && s.alive && !s.trusted && s.w == w {
				go s.w.Close() // its events end: workerGone takes the lease back
				return
			}
		}
	})
}

// Status returns the latest snapshot; it never blocks.
func (d *Download) Status() Status { return *d.status.Load() }

// Complete is closed once every piece is verified and durably written.
func (d *Download) Complete() <-chan struct{} { return d.complete }

// Err is the download's fatal error (a storage failure), if any.
func (d *Download) Err() error {
	if p := d.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Stats reports bytes for tracker announces; it never blocks.
func (d *Download) Stats() (uploaded, downloaded, left int64) {
	return d.uploaded.Load(), d.downloaded.Load(), d.left.Load()
}

// Close stops every worker and the sub-chief and waits for them. It does
// not close Storage.
func (d *Download) Close() error {
	d.loop.CloseAndWait()
	if d.ownWD {
		d.wd.Close()
	}
	return nil
}

func (d *Download) run() {
	defer d.loop.Stopped()
	tick := loop.NewPacer(d.cfg.StatusInterval, d.cfg.IdleStatusInterval)
	defer tick.Stop()
	now := time.Now()
	for _, s := range d.slots {
		d.refill(s, now, true)
	}
	if d.isDone && !d.cfg.Seed {
		d.stop(errFinished)
	}
	written := d.storage.Written()
	for {
		var toStore chan storeReq
		var next storeReq
		if len(d.pendingStore) > 0 && !d.stopped {
			toStore, next = d.toStore, d.pendingStore[0]
		}
		select {
		case toStore <- next:
			d.pendingStore[0] = storeReq{}
			d.pendingStore = d.pendingStore[1:]
			d.storing++
		case r := <-d.storedCh:
			d.stored(r)
		case <-d.loop.Closing():
			d.stop(ErrClosed)
			d.publish(time.Now())
			return
		case <-d.loop.Wake():
			d.loop.RunPosted()
		case se := <-d.fanIn:
			d.handle(se)
		case p, ok := <-written:
			if !ok {
				written = nil // the store closed; Err/tick report why
				continue
			}
			d.pieceWritten(p)
		case now := <-tick.C():
			d.tick(now)
			tick.Ticked(d.idle())
			continue
		case _, ok := <-d.alerts: // the private watchdog's (leaseclock.go)
			if !ok {
				d.alerts = nil
				continue
			}
			d.checkLeases(time.Now())
		}
		tick.Wake()
	}
}

// idle reports whether the last published Status shows nothing to do
// until an event comes: complete, no peer (on a live worker), no rate.
func (d *Download) idle() bool {
	st := d.status.Load()
	return d.isDone && len(d.pendingStore) == 0 && st.Peers == 0 && st.DownRate < 1 && st.UpRate < 1
}

// stop closes every worker once (download over, failed or closed).
func (d *Download) stop(reason error) {
	if d.stopped {
		return
	}
	d.stopped = true
	close(d.stopCh)
	d.cancel()
	for _, s := range d.slots {
		if s.idx >= 0 {
			s.w.Close()
			s.alive = false
		}
	}
	d.wg.Wait()
	for _, s := range d.slots {
		s.stopLease(d.wd)
	}
	if !errors.Is(reason, ErrClosed) && !errors.Is(reason, errFinished) {
		d.err.CompareAndSwap(nil, &reason)
	}
}

var (
	errFinished    = errors.New("swarm: download finished")
	errQuarantined = errors.New("swarm: quarantined: delivered pieces that failed verification")
)

func (d *Download) fail(err error) {
	d.log.Error("download failed", "err", err)
	d.err.CompareAndSwap(nil, &err)
	d.stop(err)
	d.publish(time.Now())
}

func (d *Download) handle(se slotEvent) {
	s := d.slots[se.slot]
	if se.end {
		d.workerGone(s, errors.New("worker stopped"))
		return
	}
	ev := se.ev
	switch ev.Kind {
	case EventPiece:
		s.unreleased++
		if !d.gotPiece(s, ev) {
			s.release(ev.Piece) // dropped
		}
	case EventRevoked:
		d.log.Debug("pieces given back", "worker", s.w.Name(), "pieces", len(ev.Pieces), "asked", len(s.ask), "left", d.lb.Left())
		d.endGame.Cancelled += d.lb.Shared(s.idx, ev.Pieces)
		d.returned.Revoked += d.lb.Return(s.idx, ev.Pieces)
		s.answered(d.lb, ev.Pieces, ev.Kept)
		d.rebalance(time.Now(), false)
	case EventFailed:
		d.workerGone(s, ev.Err)
	case EventPeers:
		d.addPeers(ev.Addrs)
	case EventLeaving:
		if s.alive && !s.trusted {
			s.leaving = true
			d.log.Info("worker leaving: no more pieces for it; it ships what it finishes", "worker", s.w.Name(), "holds", d.lb.Held(s.idx))
		}
	}
	d.syncLeases()
}

func (d *Download) workerGone(s *workerSlot, err error) {
	if !s.alive {
		return
	}
	s.alive = false
	s.state = WorkerGone
	s.stopLease(d.wd)
	held := d.lb.HeldBy(s.idx, nil)
	d.returned.Gone += d.lb.Return(s.idx, held)
	if s.trusted && !d.stopped {
		d.fail(fmt.Errorf("swarm: local swarm stopped: %w", err))
		return
	}
	d.log.Warn("worker gone; its lease returns to the pool", "worker", s.w.Name(), "pieces", len(held), "err", err)
	go s.w.Close()
	d.rebalance(time.Now(), true) // reassign the lost lease at once
	// The peers only it had go to the others.
	d.peers.Deal(d.peers.Orphans(liveMask(d.slots), nil), d.slots)
}

// gotPiece checks a delivered piece and queues it for Storage; it reports
// whether it did (otherwise the piece was dropped).
func (d *Download) gotPiece(s *workerSlot, ev WorkerEvent) bool {
	i := ev.Piece
	if i < 0 || i >= d.n || d.stopped || d.lb.IsDone(i) {
		if i >= 0 && i < d.n && !d.stopped {
			d.endGame.Twice++
			d.endGame.TwiceBytes += d.cfg.Info.PieceLen(i)
			// Counted by the cluster fault tests (internal/clustertest).
			d.log.Debug("piece dropped: verified already", "worker", s.w.Name(), "piece", i)
		}
		recycle(d.storage, ev.Data) // out of range, too late, or an end game duplicate
		return false
	}
	if !s.trusted || !ev.Verified {
		if int64(len(ev.Data)) != d.cfg.Info.PieceLen(i) || sha1.Sum(ev.Data) != d.cfg.Info.PieceHash(i) {
			s.bad++
			d.log.Warn("worker delivered a bad piece", "worker", s.w.Name(), "piece", i, "bad", s.bad)
			recycle(d.storage, ev.Data)
			d.returned.BadPiece += d.lb.Return(s.idx, []int{i})
			if s.bad >= d.cfg.MaxStrikes {
				d.quarantine(s) // subchief_quarantine.go
			}
			return false
		}
	}
	s.leaseDelivered(d.wd)
	d.log.Debug("piece accepted", "worker", s.w.Name(), "piece", i) // counted by the kill matrix tests
	others, _ := d.lb.Done(i, s.idx)
	for _, o := range d.slots {
		if o.idx >= 0 && o.alive && others&(1<<o.idx) != 0 {
			d.endGame.Cancelled++
			d.log.Debug("end game: copy cancelled", "worker", o.w.Name(), "piece", i, "arrived from", s.w.Name())
			o.w.Revoke([]int{i}, true)
		}
	}
	now := time.Now()
	s.taken++
	d.sources.set(i, s.w.Name())
	s.rate.Add(len(ev.Data))
	d.nVerified++
	d.pendingStore = append(d.pendingStore, storeReq{s: s, piece: i, data: ev.Data})
	d.refill(s, now, false)
	if d.lb.Held(s.idx) < lowWater(d.target(s)) && d.lb.PoolEmpty() {
		d.rebalance(now, false) // running dry: steal now, not at the next tick
	}
	return true
}

func (d *Download) pieceWritten(i int) {
	if i < 0 || i >= d.n || d.written[i] {
		return
	}
	d.written[i] = true
	d.nWritten++
	d.bytesDone += d.cfg.Info.PieceLen(i)
	if !d.lb.IsDone(i) { // stored by someone else's path (e.g. resume race)
		d.lb.Done(i, -1)
		d.nVerified++
	}
	for _, s := range d.slots {
		if s.alive {
			s.w.Have([]int{i})
		}
	}
	d.syncLeases()
	d.checkComplete()
}

// checkComplete declares the download complete once every piece is
// written and every piece handed to the storer is settled (released to its
// worker). Storage reports a piece on Written from inside Submit, before
// the storer's answer reaches the loop: completing on Written alone closed
// the workers with that piece unreleased, and the storer, seeing stopCh
// closed, could drop its answer, so the piece was never released.
func (d *Download) checkComplete() {
	if d.isDone || d.nWritten < d.n || d.storing > 0 || len(d.pendingStore) > 0 {
		return
	}
	d.isDone = true
	d.publish(time.Now()) // a Status read after Complete() shows it
	close(d.complete)
	d.log.Info("download complete")
	if !d.cfg.Seed {
		d.stop(errFinished)
	}
	d.publish(time.Now())
}

// refill tops up a worker's lease to what it can fetch in LeaseHorizon,
// but never beyond its share of the pieces left (so that no worker hoards
// pieces another will have to steal or duplicate). When the pool is empty
// a worker running dry duplicates pieces another worker is known to be
// downloading (end game across workers); unstarted pieces are stolen
// instead (rebalance), which costs no bytes.
func (d *Download) refill(s *workerSlot, now time.Time, force bool) {
	if !s.working() || d.stopped {
		return
	}
	target := d.target(s)
	held := d.lb.Held(s.idx)
	if held >= target || (!force && held > target/2) {
		return
	}
	got := d.lb.Take(s.idx, target-held, nil)
	if low := lowWater(target); len(got) == 0 && held < low && d.lb.PoolEmpty() && !d.awaitSteal() {
		got = d.lb.DuplicateStarted(s.idx, low-held, maxLeaseHolders, nil)
		if len(got) == 0 && held == 0 {
			// Idle, and every started piece has its holders: join one
			// that only slower workers are fetching (the slow node's
			// last piece), one at a time.
			got = d.lb.DuplicateFromSlower(s.idx, 1, slowerThan(s, d.slots), nil)
		}
		if len(got) == 0 && held == 0 && d.lb.Left() <= d.workingCount() {
			// The last pieces, no more of them than workers: an idle
			// worker joins one that a single worker holds, started or
			// not. A steal would cost no bytes but a round trip, and
			// the pieces a worker kept count as started only after it
			// answered (or stealWait): in the 8-host run six workers
			// idled 0.4 s while one fetched its last two pieces, and an
			// idle worker's decaying rate made none of them faster than
			// it (DuplicateFromSlower). At most one piece per worker,
			// cancelled when the other copy arrives. (Started pieces
			// with a single holder were taken above: these are not.)
			// Pieces a pending steal asked back too: the answer takes a
			// round trip (and a node before WorkerEvent.Kept sends none
			// when it has started every piece asked), and waiting out
			// stealWait (500 ms) for it left the last piece of an
			// 8-host run with its only holder, 0.14 s after the one
			// before it, seven links idle. If the holder does give it
			// back, this copy is simply the only one.
			got = d.lb.DuplicateHeld(s.idx, 1, maxLeaseHolders, nil)
		}
		for _, i := range got {
			d.endGame.Duplicated++
			d.endGame.DuplicatedBytes += d.cfg.Info.PieceLen(i)
		}
		if len(got) > 0 {
			d.log.Debug("end game: duplicating started pieces", "worker", s.w.Name(), "pieces", len(got), "left", d.lb.Left())
		}
	}
	if len(got) == 0 {
		return
	}
	s.assignedAt = now
	d.log.Debug("lease assigned", "worker", s.w.Name(), "pieces", len(got), "held", d.lb.Held(s.idx), "left", d.lb.Left())
	s.w.Assign(got)
	d.syncLease(s)
}

// workingCount is the number of workers taking pieces (workerSlot.working).
func (d *Download) workingCount() int {
	n := 0
	for _, s := range d.slots {
		if s.working() {
			n++
		}
	}
	return n
}

func (d *Download) tick(now time.Time) {
	for _, s := range d.slots {
		if s.alive {
			s.rate.Tick(now)
		}
	}
	if !d.stopped {
		d.checkLeases(now)
		if err := d.storage.Err(); err != nil {
			d.fail(fmt.Errorf("swarm: storage: %w", err))
		}
		d.rebalance(now, false)
		d.syncLeases()
	}
	d.publish(now)
}

func (d *Download) publish(now time.Time) {
	st := Status{Pieces: d.n, Written: d.nWritten, Verified: d.nVerified - d.nWritten,
		BytesDone: d.bytesDone, Length: d.cfg.Info.Length, Complete: d.isDone, Err: d.Err(), Updated: now,
		StorageWait: d.submitWait, Returned: d.returned, EndGame: d.endGame}
	for i := 0; i < d.n; i++ {
		if d.lb.IsDone(i) {
			continue
		}
		if d.lb.holders[i] != 0 {
			st.Active++
		} else {
			st.Missing++
		}
	}
	for _, s := range d.slots {
		if s.idx < 0 {
			continue
		}
		ws := s.w.Status()
		st.FirstRequest = earliest(st.FirstRequest, ws.FirstRequest)
		st.FirstPeer = earliest(st.FirstPeer, ws.FirstPeer)
		ws.Delivered = s.taken
		ws.Identity = identityOf(s.w)
		switch {
		case s.state != "":
			ws.State = s.state
		case s.leaving:
			ws.State = WorkerLeaving
		case s.benched:
			ws.State = WorkerBenched
		default:
			ws.State = WorkerActive
		}
		st.Workers = append(st.Workers, ws)
		st.Downloaded += ws.Downloaded
		st.Uploaded += ws.Uploaded
		if s.state == "" { // a gone worker's last rates and peers are history
			st.DownRate += ws.DownRate
			st.UpRate += ws.UpRate
			st.Peers += ws.Peers
			st.Seeds += ws.Seeds
		}
	}
	d.uploaded.Store(st.Uploaded)
	d.downloaded.Store(st.Downloaded)
	d.left.Store(st.Length - st.BytesDone)
	d.status.Store(&st)
}

// earliest is the earlier of two times, a zero time meaning "not yet".
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}
