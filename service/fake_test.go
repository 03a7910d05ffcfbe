package service

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"flotilla/coordinator"
	"flotilla/dht"
	"flotilla/internal/testenv"
	"flotilla/metainfo"
	"flotilla/piecestore"
	"flotilla/swarm"
	"flotilla/watchdog"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeEngine starts fakeRunners: the test plays the coordinator's events.
type fakeEngine struct {
	mu      sync.Mutex
	runs    map[string]*fakeRunner // by torrent name, the newest run
	starts  map[string]int
	failing error // start's error while not nil
	// dhtStats are the DHT's figures; a DHT is on when Sent > 0.
	dhtStats dht.Stats
}

type fakeRunner struct {
	spec     jobSpec
	events   chan coordinator.Event
	mu       sync.Mutex
	closed   bool
	trackers []coordinator.TrackerReport
	sources  swarm.PieceSources
}

func newFakeEngine() *fakeEngine {
	return &fakeEngine{runs: map[string]*fakeRunner{}, starts: map[string]int{}}
}

func (e *fakeEngine) start(spec jobSpec) (runner, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.failing != nil {
		closeHandover(spec.handover) // start owns them
		return nil, e.failing
	}
	r := &fakeRunner{spec: spec, events: make(chan coordinator.Event, 16)}
	e.runs[spec.torrent.Info.Name] = r
	e.starts[spec.torrent.Info.Name]++
	return r, nil
}

func (e *fakeEngine) run(name string) *fakeRunner {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.runs[name]
}

func (e *fakeEngine) startCount(name string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.starts[name]
}

func (e *fakeEngine) addr() string { return "127.0.0.1:6881" }
func (e *fakeEngine) cluster() (coordinator.ClusterInfo, bool) {
	return coordinator.ClusterInfo{}, false
}
func (e *fakeEngine) close() error                   { return nil }
func (e *fakeEngine) watchdog() []watchdog.KindStats { return nil }

func (e *fakeEngine) dhtPeers(context.Context, [20]byte) ([]netip.AddrPort, bool) {
	_, on := e.dht()
	return nil, on
}

func (e *fakeEngine) dht() (dht.Stats, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dhtStats, e.dhtStats.Sent > 0
}

func (r *fakeRunner) Events() <-chan coordinator.Event { return r.events }
func (r *fakeRunner) PiecesComplete() int              { return 0 }
func (r *fakeRunner) StoreStats() piecestore.Stats     { return piecestore.Stats{} }

func (r *fakeRunner) PieceSources(context.Context) (swarm.PieceSources, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sources, nil
}

func (r *fakeRunner) Trackers(context.Context, int) ([]coordinator.TrackerReport, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.trackers, nil
}

func (r *fakeRunner) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		closeHandover(r.spec.handover) // as the job's swarm closes what it adopted
	}
	r.closed = true
	return nil
}

func (r *fakeRunner) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

var _ engine = (*fakeEngine)(nil)

// newTestService starts a Service on a fake engine with its directories
// under dir (t.TempDir when "").
func newTestService(t *testing.T, dir string, eng *fakeEngine, opts ...func(*Config)) *Service {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := DefaultConfig()
	cfg.StateDir, cfg.DataDir = dir+"/state", dir+"/data"
	for _, o := range opts {
		o(&cfg)
	}
	s, err := newService(cfg, func() (engine, error) { return eng, nil })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// testTorrent builds a single-file torrent called name of size bytes.
func testTorrent(t *testing.T, name string, size int) []byte {
	t.Helper()
	data := bytes.Repeat([]byte(name), size/len(name)+1)[:size]
	b, err := metainfo.Build(name, []metainfo.File{{Length: int64(size)}}, 16<<10,
		[][]string{{"http://127.0.0.1:1/announce"}}, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitState waits until job id is in state want.
func waitState(t *testing.T, s *Service, id, want string) JobDetail {
	t.Helper()
	var d JobDetail
	testenv.WaitFor(t, 10*time.Second, "job "+id+" "+want, func() bool {
		var err error
		d, err = s.Get(id)
		return err == nil && d.State == want
	})
	return d
}

var errTest = errors.New("test failure")
