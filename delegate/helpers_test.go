package delegate

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"flotilla/cluster"
	"flotilla/internal/testenv"
	"flotilla/swarm"
	"flotilla/swarm/swarmtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testKey(b byte) cluster.Key {
	var k cluster.Key
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

// jobSpec is the job of downloading tt (its tracker is never reached).
func jobSpec(tt *swarmtest.Torrent) JobSpec {
	return JobSpec{InfoHash: tt.InfoHash, InfoBytes: tt.InfoBytes, Trackers: [][]string{{"http://127.0.0.1:1/announce"}}}
}

// fakeWorker is a swarm.Worker test double: it "downloads" assigned
// pieces from the test torrent's data, one at a time, blocking on its
// events channel like a real worker with a one-piece budget. With hold set
// it emits nothing until resume.
type fakeWorker struct {
	tt     *swarmtest.Torrent
	events chan swarm.WorkerEvent

	mu       sync.Mutex
	queue    []int
	outbox   []swarm.WorkerEvent
	assigned []int
	haves    []int
	peers    []netip.AddrPort
	revokes  [][]int
	started  map[int]bool // pieces a Revoke without force keeps (Kept)
	hold     bool
	corrupt  bool    // flip a byte in every piece (and still claim Verified)
	rate     float64 // bytes/s it "downloads" at (0: memory speed)
	failWith error

	wake   chan struct{}
	quit   chan struct{}
	done   chan struct{}
	once   sync.Once
	closed atomic.Bool

	emitted, released atomic.Int64
	maxPeers          atomic.Int64 // SetMaxPeers
}

// SetMaxPeers records the job's share of the node's peers (Status
// reports it).
func (w *fakeWorker) SetMaxPeers(n int) { w.maxPeers.Store(int64(n)) }

func newFakeWorker(tt *swarmtest.Torrent, hold bool) *fakeWorker {
	w := &fakeWorker{tt: tt, events: make(chan swarm.WorkerEvent), hold: hold,
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

func (w *fakeWorker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *fakeWorker) run() {
	defer close(w.done)
	defer close(w.events)
	for {
		w.mu.Lock()
		var ev swarm.WorkerEvent
		have := false
		switch {
		case len(w.outbox) > 0:
			ev, have = w.outbox[0], true
			w.outbox = w.outbox[1:]
		case w.failWith != nil:
			ev, have = swarm.WorkerEvent{Kind: swarm.EventFailed, Err: w.failWith}, true
			w.failWith = nil
		case !w.hold && len(w.queue) > 0:
			p := w.queue[0]
			w.queue = w.queue[1:]
			ev, have = swarm.WorkerEvent{Kind: swarm.EventPiece, Piece: p, Data: bytes.Clone(w.tt.Piece(p)), Verified: true}, true
			if w.corrupt {
				ev.Data[len(ev.Data)/2] ^= 0x55
			}
			w.emitted.Add(1)
		}
		rate := w.rate
		w.mu.Unlock()
		if !have {
			select {
			case <-w.wake:
				continue
			case <-w.quit:
				return
			}
		}
		if rate > 0 && ev.Kind == swarm.EventPiece {
			// Paced like a node on a capped WAN link.
			t := time.NewTimer(time.Duration(float64(len(ev.Data)) / rate * float64(time.Second)))
			select {
			case <-t.C:
			case <-w.quit:
				t.Stop()
				return
			}
		}
		select {
		case w.events <- ev:
		case <-w.quit:
			return
		}
	}
}

func (w *fakeWorker) Name() string                     { return "fake" }
func (w *fakeWorker) Events() <-chan swarm.WorkerEvent { return w.events }
func (w *fakeWorker) Status() swarm.WorkerStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	return swarm.WorkerStatus{Name: "fake", Delivered: int(w.emitted.Load()), Leased: len(w.queue), Peers: len(w.peers),
		MaxPeers: int(w.maxPeers.Load())}
}

func (w *fakeWorker) Assign(pieces []int) {
	w.mu.Lock()
	w.assigned = append(w.assigned, pieces...)
	w.queue = append(w.queue, pieces...)
	w.mu.Unlock()
	w.poke()
}

// Revoke gives back the requested pieces not yet emitted, except, without
// force, those marked started (reported as Kept).
func (w *fakeWorker) Revoke(pieces []int, force bool) {
	w.mu.Lock()
	w.revokes = append(w.revokes, pieces)
	want := map[int]bool{}
	for _, p := range pieces {
		want[p] = true
	}
	var got, started []int
	queue := w.queue[:0]
	for _, p := range w.queue {
		switch {
		case want[p] && !force && w.started[p]:
			started = append(started, p)
			queue = append(queue, p)
		case want[p]:
			got = append(got, p)
		default:
			queue = append(queue, p)
		}
	}
	w.queue = queue
	w.outbox = append(w.outbox, swarm.WorkerEvent{Kind: swarm.EventRevoked, Pieces: got, Kept: started})
	w.mu.Unlock()
	w.poke()
}

func (w *fakeWorker) Have(pieces []int) {
	w.mu.Lock()
	w.haves = append(w.haves, pieces...)
	w.mu.Unlock()
}

func (w *fakeWorker) AddPeers(addrs []netip.AddrPort) {
	w.mu.Lock()
	w.peers = append(w.peers, addrs...)
	w.mu.Unlock()
}

func (w *fakeWorker) Release(int) { w.released.Add(1) }

func (w *fakeWorker) resume() {
	w.mu.Lock()
	w.hold = false
	w.mu.Unlock()
	w.poke()
}

func (w *fakeWorker) fail(err error) {
	w.mu.Lock()
	w.failWith = err
	w.mu.Unlock()
	w.poke()
}

func (w *fakeWorker) Close() error {
	w.once.Do(func() { close(w.quit) })
	<-w.done
	w.closed.Store(true)
	return nil
}

func (w *fakeWorker) snapshot() (assigned, haves []int, peers []netip.AddrPort, revokes [][]int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int(nil), w.assigned...), append([]int(nil), w.haves...),
		append([]netip.AddrPort(nil), w.peers...), append([][]int(nil), w.revokes...)
}

// fakeFactory hands out fake workers and remembers them.
type fakeFactory struct {
	tt      *swarmtest.Torrent
	hold    bool
	corrupt bool
	rate    float64 // each worker's pace in bytes/s (0: memory speed)
	err     error
	mu      sync.Mutex
	ws      []*fakeWorker
	jobs    []Job
}

func (f *fakeFactory) newWorker(job Job) (swarm.Worker, error) {
	if f.err != nil {
		return nil, f.err
	}
	w := newFakeWorker(f.tt, f.hold)
	w.mu.Lock()
	w.corrupt = f.corrupt
	w.rate = f.rate
	w.mu.Unlock()
	f.mu.Lock()
	f.ws = append(f.ws, w)
	f.jobs = append(f.jobs, job)
	f.mu.Unlock()
	return w, nil
}

func (f *fakeFactory) worker(t testing.TB, i int) *fakeWorker {
	t.Helper()
	testenv.WaitFor(t, 5*time.Second, "worker created", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.ws) > i
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ws[i]
}

// waitStable polls f until its value has not changed for quiet.
func waitStable(t testing.TB, timeout, quiet time.Duration, f func() int64) int64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last, since := f(), time.Now()
	for time.Since(since) < quiet {
		if time.Now().After(deadline) {
			t.Fatalf("value still changing after %v (now %d)", timeout, last)
		}
		time.Sleep(10 * time.Millisecond)
		if v := f(); v != last {
			last, since = v, time.Now()
		}
	}
	return last
}

// transport is how a test connects a client to a server.
type transport struct {
	name string
	tcp  bool
	sync bool // net.Pipe: synchronous, unbuffered
}

// transports are the buffered in-memory pipe and TCP loopback;
// allTransports adds net.Pipe, on which a TLS alert can deadlock against
// the peer's own flight (so failure tests do not use it).
var (
	transports    = []transport{{name: "mem"}, {name: "tcp", tcp: true}}
	allTransports = []transport{{name: "pipe", sync: true}, {name: "mem"}, {name: "tcp", tcp: true}}
)

type testServer struct {
	*Server
	sync    bool
	factory *fakeFactory
	served  chan error
}

func newTestServer(t testing.TB, tr transport, tt *swarmtest.Torrent, mod func(*ServerConfig)) *testServer {
	return newTestServerWith(t, tr, &fakeFactory{tt: tt}, mod)
}

func newTestServerWith(t testing.TB, tr transport, f *fakeFactory, mod func(*ServerConfig)) *testServer {
	t.Helper()
	cfg := DefaultServerConfig()
	cfg.Key = testKey(1)
	cfg.Name = "node1"
	cfg.NewWorker = f.newWorker
	cfg.StatusInterval = 20 * time.Millisecond
	cfg.Logger = swarmtest.Logger(t, slog.LevelWarn)
	if tr.tcp {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		cfg.Listener = ln
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: srv, factory: f, served: make(chan error, 1), sync: tr.sync}
	if srv.Addr() != nil {
		go func() { ts.served <- srv.Serve() }()
	} else {
		ts.served <- ErrClosed
	}
	t.Cleanup(func() {
		srv.Close()
		if err := <-ts.served; !errors.Is(err, ErrClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return ts
}

// conn returns a client connection to the server over the transport.
func (ts *testServer) conn(t testing.TB) net.Conn {
	t.Helper()
	if a := ts.Addr(); a != nil {
		c, err := net.Dial("tcp4", a.String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	var c1, c2 net.Conn
	if ts.sync {
		c1, c2 = net.Pipe()
	} else {
		c1, c2 = memPipe()
	}
	ts.ServeConn(c2)
	return c1
}

func testClientConfig(t testing.TB) ClientConfig {
	cfg := DefaultClientConfig()
	cfg.Logger = swarmtest.Logger(t, slog.LevelWarn)
	cfg.HandshakeTimeout = 5 * time.Second
	return cfg
}

// dial runs Client over a fresh connection to ts.
func dial(t testing.TB, ts *testServer, key cluster.Key, job JobSpec, cfg ClientConfig) (*RemoteSwarm, error) {
	t.Helper()
	c := ts.conn(t)
	r, err := Client(context.Background(), c, key, job, cfg)
	if err != nil {
		c.Close()
		return nil, err
	}
	t.Cleanup(func() { r.Close() })
	return r, nil
}

// mustDial runs Client over a fresh connection to ts with the cluster key
// and tt's job, failing the test on error.
// mustDialHolding starts a node over tr whose fake worker holds every
// piece it is assigned until resumed, and dials it: the job's RemoteSwarm
// and the worker behind it.
func mustDialHolding(t *testing.T, tr transport, tt *swarmtest.Torrent) (*RemoteSwarm, *fakeWorker) {
	t.Helper()
	f := &fakeFactory{tt: tt, hold: true}
	ts := newTestServerWith(t, tr, f, nil)
	r := mustDial(t, ts, tt)
	return r, f.worker(t, 0)
}

func mustDial(t testing.TB, ts *testServer, tt *swarmtest.Torrent) *RemoteSwarm {
	t.Helper()
	r, err := dial(t, ts, testKey(1), jobSpec(tt), testClientConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// collect reads events until n pieces arrived, checking each against the
// torrent; other events are returned.
func collect(t testing.TB, r *RemoteSwarm, tt *swarmtest.Torrent, n int, timeout time.Duration) (got map[int]bool, other []swarm.WorkerEvent) {
	t.Helper()
	got = map[int]bool{}
	deadline := time.After(timeout)
	for len(got) < n {
		select {
		case ev, ok := <-r.Events():
			if !ok {
				t.Fatalf("events closed after %d pieces: %v", len(got), r.Err())
			}
			if ev.Kind != swarm.EventPiece {
				other = append(other, ev)
				continue
			}
			if ev.Verified {
				t.Fatalf("piece %d from a node marked Verified", ev.Piece)
			}
			if sha1.Sum(ev.Data) != tt.Info.PieceHash(ev.Piece) {
				t.Fatalf("piece %d data wrong", ev.Piece)
			}
			got[ev.Piece] = true
			r.Release(ev.Piece) // we play the sub-chief
		case <-deadline:
			t.Fatalf("only %d of %d pieces after %v", len(got), n, timeout)
		}
	}
	return got, other
}

func allPieces(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	return p
}
