package swarm

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"flotilla/internal/testenv"
	"flotilla/swarm/swarmtest"
)

// fakeWorker is a remote swarm stand-in: it delivers every piece assigned
// to it (with correct or corrupted data) unless it is told to hold them.
// It records what the sub-chief tells it. Like a remote swarm it holds at
// most fakeInFlight unreleased pieces (the Worker contract's back-pressure).
type fakeWorker struct {
	name    string
	tt      *swarmtest.Torrent
	corrupt bool
	hold    bool          // never deliver
	mute    bool          // never answer Revoke (with hold: a wedged node)
	delay   time.Duration // time to "download" each piece (0: at once)
	events  chan WorkerEvent

	mu        sync.Mutex
	cmds      []func() []WorkerEvent
	assigned  map[int]bool
	delivered map[int]bool
	have      map[int]bool
	revokes   int
	sent      int
	released  map[int]int        // Release calls per piece
	held      int                // pieces sent and not yet released
	log       []fakeCall         // Assign and Revoke calls, in order
	leasedAt  map[int]time.Time  // when each piece not yet delivered was assigned
	maxHold   time.Duration      // longest time from Assign to delivery of a piece
	peers     [][]netip.AddrPort // AddPeers calls
	wake      chan struct{}
	quit      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// fakeCall is an Assign or Revoke call to a fakeWorker; seq orders the
// calls to every fakeWorker of a test.
type fakeCall struct {
	seq    int64
	revoke bool
	force  bool
	pieces []int
}

var fakeSeq atomic.Int64

// fakeInFlight bounds a fakeWorker's unreleased pieces.
const fakeInFlight = 4

func newFakeWorker(name string, tt *swarmtest.Torrent) *fakeWorker {
	return &fakeWorker{name: name, tt: tt, events: make(chan WorkerEvent),
		assigned: map[int]bool{}, delivered: map[int]bool{}, have: map[int]bool{}, leasedAt: map[int]time.Time{},
		released: map[int]int{},
		wake:     make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
}

func (f *fakeWorker) start() *fakeWorker { go f.run(); return f }

func (f *fakeWorker) post(fn func() []WorkerEvent) {
	f.mu.Lock()
	f.cmds = append(f.cmds, fn)
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *fakeWorker) run() {
	defer close(f.done)
	defer close(f.events)
	var out []WorkerEvent
	var gate <-chan time.Time // a piece being "downloaded" until it fires
	for {
		var ch chan WorkerEvent
		var first WorkerEvent
		if len(out) > 0 {
			f.mu.Lock()
			full := out[0].Kind == EventPiece && f.held >= fakeInFlight
			f.mu.Unlock()
			if gate == nil && !full {
				ch, first = f.events, out[0]
			}
		} else {
			f.mu.Lock()
			for i := range f.assigned {
				if !f.hold && !f.delivered[i] && !f.have[i] {
					f.delivered[i] = true
					data := bytes.Clone(f.tt.Piece(i))
					if f.corrupt {
						data[0] ^= 0xFF
					}
					out = append(out, WorkerEvent{Kind: EventPiece, Piece: i, Data: data})
					if f.delay > 0 {
						gate = time.After(f.delay)
					}
					break
				}
			}
			f.mu.Unlock()
			if len(out) > 0 {
				continue
			}
		}
		select {
		case <-f.quit:
			return
		case <-gate:
			gate = nil
		case ch <- first:
			out = out[1:]
			f.mu.Lock()
			f.sent++
			if first.Kind == EventPiece {
				f.held++
			}
			if at, ok := f.leasedAt[first.Piece]; ok && first.Kind == EventPiece {
				f.maxHold = max(f.maxHold, time.Since(at))
				delete(f.leasedAt, first.Piece)
			}
			f.mu.Unlock()
		case <-f.wake:
			f.mu.Lock()
			cmds := f.cmds
			f.cmds = nil
			f.mu.Unlock()
			for _, c := range cmds {
				out = append(out, c()...)
			}
		}
	}
}

func (f *fakeWorker) Name() string { return f.name }
func (f *fakeWorker) Assign(pieces []int) {
	f.mu.Lock()
	f.log = append(f.log, fakeCall{seq: fakeSeq.Add(1), pieces: slices.Clone(pieces)})
	now := time.Now()
	for _, i := range pieces {
		f.assigned[i] = true
		f.leasedAt[i] = now
	}
	f.mu.Unlock()
	f.post(func() []WorkerEvent { return nil })
}
func (f *fakeWorker) Revoke(pieces []int, force bool) {
	f.mu.Lock()
	f.log = append(f.log, fakeCall{seq: fakeSeq.Add(1), revoke: true, force: force, pieces: slices.Clone(pieces)})
	f.mu.Unlock()
	if f.mute {
		return
	}
	f.post(func() []WorkerEvent {
		f.mu.Lock()
		f.revokes++
		var back []int
		for _, i := range pieces {
			if f.assigned[i] && !f.delivered[i] {
				delete(f.assigned, i)
				delete(f.leasedAt, i)
				back = append(back, i)
			}
		}
		f.mu.Unlock()
		return []WorkerEvent{{Kind: EventRevoked, Pieces: back}}
	})
}
func (f *fakeWorker) Have(pieces []int) {
	f.mu.Lock()
	for _, i := range pieces {
		f.have[i] = true
	}
	f.mu.Unlock()
}
func (f *fakeWorker) AddPeers(addrs []netip.AddrPort) {
	f.mu.Lock()
	f.peers = append(f.peers, slices.Clone(addrs))
	f.mu.Unlock()
}
func (f *fakeWorker) Events() <-chan WorkerEvent { return f.events }
func (f *fakeWorker) Release(piece int) {
	f.mu.Lock()
	f.released[piece]++
	f.held--
	f.mu.Unlock()
	f.post(func() []WorkerEvent { return nil })
}

// releasedOnce reports the first piece delivered and not released exactly
// once, or -1.
func (f *fakeWorker) releasedOnce() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.delivered {
		if f.released[i] != 1 {
			return i
		}
	}
	for i := range f.released {
		if !f.delivered[i] {
			return i
		}
	}
	return -1
}
func (f *fakeWorker) Status() WorkerStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return WorkerStatus{Name: f.name, Leased: len(f.assigned), Delivered: len(f.delivered)}
}
func (f *fakeWorker) Close() error {
	f.closeOnce.Do(func() { close(f.quit) })
	<-f.done
	return nil
}
func (f *fakeWorker) counts() (assigned, delivered, have, revokes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.assigned), len(f.delivered), len(f.have), f.revokes
}

// addStalledWorker adds a worker that holds its lease and answers no
// revocation (a node stuck, or still fetching its pieces), and waits until
// it has been leased pieces.
func addStalledWorker(t *testing.T, d *testDownload, tt *swarmtest.Torrent, name string) *fakeWorker {
	t.Helper()
	f := newFakeWorker(name, tt)
	f.hold, f.mute = true, true
	f.start()
	d.AddWorker(f)
	testenv.WaitFor(t, 10*time.Second, name+" leased", func() bool { a, _, _, _ := f.counts(); return a > 0 })
	return f
}

func subChiefConfig(t *testing.T, tt *swarmtest.Torrent) (Config, *swarmtest.Storage) {
	st := swarmtest.NewStorage(tt.Info, nil)
	cfg := testConfig(tt, st, 9)
	cfg.MinLease = 8
	cfg.LeaseTimeout = 400 * time.Millisecond
	return cfg, st
}

// The local swarm has no peers and holds its lease; a remote worker
// finishes the pool, then takes the local's pieces in end game.
func TestSubChiefEndGameAcrossWorkers(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 40*16<<10, 16<<10)
	cfg, st := subChiefConfig(t, tt)
	d := newTestDownload(t, cfg)
	f := newFakeWorker("node1", tt).start()
	d.AddWorker(f)
	waitComplete(t, d, 10*time.Second)
	if !bytes.Equal(st.Bytes(), tt.Data) {
		t.Fatal("data differs")
	}
	_, delivered, _, _ := f.counts()
	if delivered != 40 {
		t.Fatalf("remote delivered %d of 40 pieces (local had none to give)", delivered)
	}
	testenv.WaitFor(t, 10*time.Second, "remote told of every stored piece", func() bool { _, _, have, _ := f.counts(); return have == 40 })
	s := d.Status()
	if !s.Complete || s.Written != 40 || len(s.Workers) != 2 || s.Workers[1].Name != "node1" {
		t.Fatalf("workers in status: %+v", s.Workers)
	}
	// Per-worker piece counts are the sub-chief's own: exact at completion.
	if s.Workers[0].Delivered+s.Workers[1].Delivered != 40 || s.Workers[1].Delivered != 40 {
		t.Fatalf("delivered per worker %d + %d, want 0 + 40", s.Workers[0].Delivered, s.Workers[1].Delivered)
	}
}

// A worker that stops has its lease returned to the pool; a worker that
// sends corrupt pieces is quarantined; the download still completes.
func TestSubChiefFailoverAndQuarantine(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 64*16<<10, 16<<10)
	cfg, st := subChiefConfig(t, tt)
	d := newTestDownload(t, cfg)
	bad := newFakeWorker("liar", tt)
	bad.corrupt = true
	bad.start()
	stuck := newFakeWorker("stuck", tt)
	stuck.hold = true
	stuck.start()
	d.AddWorker(bad)
	d.AddWorker(stuck)
	testenv.WaitFor(t, 10*time.Second, "stuck worker leased", func() bool { a, _, _, _ := stuck.counts(); return a > 0 })
	stuck.Close() // its event channel closes: the sub-chief returns its lease
	testenv.WaitFor(t, 10*time.Second, "liar delivered", func() bool { _, dl, _, _ := bad.counts(); return dl >= cfg.MaxStrikes })
	// Status tells the two apart until their slots are reused.
	testenv.WaitFor(t, 10*time.Second, "Status to show the liar quarantined and the stuck worker gone", func() bool {
		ws := workerStates(d.Status())
		return ws["liar"] == WorkerQuarantined && ws["stuck"] == WorkerGone
	})
	good := newFakeWorker("good", tt).start()
	d.AddWorker(good)
	waitComplete(t, d, 10*time.Second)
	if !bytes.Equal(st.Bytes(), tt.Data) {
		t.Fatal("data differs")
	}
	if _, dl, _, _ := good.counts(); dl < 64-cfg.MinLease-2*cfg.MaxStrikes {
		t.Fatalf("good worker delivered only %d", dl)
	}
	select {
	case <-bad.done: // quarantined: the sub-chief closed it
	default:
		t.Fatal("worker delivering corrupt pieces was not quarantined")
	}
	if ws := workerStates(d.Status()); ws["good"] != WorkerActive {
		t.Errorf("worker states at completion %v, want good active", ws)
	}
}

func workerStates(st Status) map[string]WorkerState {
	m := map[string]WorkerState{}
	for _, w := range st.Workers {
		m[w.Name] = w.State
	}
	return m
}

// gatedStorage blocks Submit until the gate opens.
type gatedStorage struct {
	*swarmtest.Storage
	gate chan struct{}
}

func (g gatedStorage) Submit(ctx context.Context, p int, data []byte) error {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Storage.Submit(ctx, p, data)
}

// A slow disk throttles a remote worker (a few pieces in flight: the
// sub-chief releases a piece only once it is stored, exactly once) and
// never blocks the sub-chief's loop.
func TestSubChiefStorageBackPressure(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 64*16<<10, 16<<10)
	cfg, st := subChiefConfig(t, tt)
	g := gatedStorage{Storage: st, gate: make(chan struct{})}
	cfg.Storage = g
	d := newTestDownload(t, cfg)
	f := newFakeWorker("node1", tt).start()
	d.AddWorker(f)
	testenv.WaitFor(t, 10*time.Second, "a first piece", func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.sent > 0 })
	// The sub-chief keeps answering while Storage is stuck.
	for range 3 {
		ran := make(chan struct{})
		d.loop.Post(func() { close(ran) })
		select {
		case <-ran:
		case <-time.After(2 * time.Second):
			t.Fatal("sub-chief loop blocked by Storage")
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.mu.Lock()
	sent := f.sent
	f.mu.Unlock()
	if sent > fakeInFlight+2 {
		t.Fatalf("remote worker sent %d pieces while storage was blocked (limit %d)", sent, fakeInFlight)
	}
	close(g.gate)
	waitComplete(t, d, 10*time.Second)
	if !bytes.Equal(st.Bytes(), tt.Data) {
		t.Fatal("data differs")
	}
	if p := f.releasedOnce(); p >= 0 {
		t.Fatalf("piece %d not released exactly once", p)
	}
}

// Several workers at different speeds (and a local swarm without peers
// holding a lease): stealing moves unstarted pieces to whoever runs dry and
// end game duplicates only pieces a worker has started, so the pieces
// fetched beyond the torrent stay a few percent (duplicating leases early
// fetched a quarter of the torrent twice).
func TestSubChiefBoundedWasteAcrossWorkers(t *testing.T) {
	const n = 160
	tt := swarmtest.NewTorrent(t, n*16<<10, 16<<10)
	cfg, st := subChiefConfig(t, tt)
	cfg.LeaseTimeout = 5 * time.Second // a slow worker is not stalled
	cfg.Logger = swarmtest.Logger(t, slog.LevelInfo)
	d := newTestDownload(t, cfg)
	var fs []*fakeWorker
	for k, delay := range []time.Duration{time.Millisecond, 3 * time.Millisecond, 10 * time.Millisecond, 40 * time.Millisecond} {
		f := newFakeWorker(fmt.Sprintf("node%d", k+1), tt)
		f.delay = delay
		fs = append(fs, f.start())
		d.AddWorker(f)
	}
	t0 := time.Now()
	waitComplete(t, d, 20*time.Second)
	took := time.Since(t0)
	if !bytes.Equal(st.Bytes(), tt.Data) {
		t.Fatal("data differs")
	}
	fetched, slowest, slowAssigned, slowRevokes := 0, 0, 0, 0
	for k, f := range fs {
		as, dl, _, rv := f.counts()
		fetched += dl
		if k == len(fs)-1 {
			slowest, slowAssigned, slowRevokes = dl, as, rv
		}
	}
	t.Logf("fetched %d pieces for %d in %v (slowest worker: %d assigned, %d delivered, %d revokes)", fetched, n, took, slowAssigned, slowest, slowRevokes)
	if waste := fetched - n; waste < 0 || waste > n*3/100+maxLeaseHolders {
		t.Fatalf("workers fetched %d pieces for a %d-piece torrent: %d wasted", fetched, n, waste)
	}
	// The tail must not wait for the slowest (40 ms/piece) worker's lease:
	// its unstarted pieces are revoked for whoever runs dry, so it delivers
	// about its share of the speed (under 2 %: 4 to 6 pieces), far from an
	// equal quarter. Counted in pieces and revokes, not time, so that a
	// loaded machine cannot fail it.
	if slowRevokes == 0 || slowest >= n/4 {
		t.Fatalf("the slowest worker (40 ms a piece) delivered %d of %d pieces with %d revokes: its lease was not moved to the faster ones", slowest, n, slowRevokes)
	}
}

// The last pieces, no more of them than workers, held by workers that
// neither deliver them nor give them back (a local swarm and a node still
// fetching them): an idle worker joins them at once, one at a time,
// instead of waiting stealWait (8 s here) for the steal to count them as
// started.
func TestSubChiefIdleWorkersJoinLastPieces(t *testing.T) {
	const n = 3
	tt := swarmtest.NewTorrent(t, n*16<<10, 16<<10)
	cfg, st := subChiefConfig(t, tt)
	cfg.StatusInterval, cfg.IdleStatusInterval = 4*time.Second, 4*time.Second // stealWait 8 s
	cfg.LeaseTimeout = time.Minute
	d := newTestDownload(t, cfg)
	addStalledWorker(t, d, tt, "slow")
	fast := newFakeWorker("fast", tt).start()
	d.AddWorker(fast)
	waitComplete(t, d, 5*time.Second)
	if !bytes.Equal(st.Bytes(), tt.Data) {
		t.Fatal("data differs")
	}
	if _, dl, _, _ := fast.counts(); dl != n {
		t.Fatalf("the fast worker delivered %d of %d pieces", dl, n)
	}
	barrier(t, d)
	if eg := d.Status().EndGame; eg.Duplicated == 0 || eg.Duplicated > n {
		t.Fatalf("end game duplicated %d pieces, want 1..%d", eg.Duplicated, n)
	}
}
