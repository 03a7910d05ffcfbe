package swarm

import (
	"testing"
	"time"

	"flotilla/swarm/swarmtest"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testConfig(tt *swarmtest.Torrent, st Storage, id byte) Config {
	cfg := DefaultConfig()
	cfg.Info = tt.Info
	cfg.InfoHash = tt.InfoHash
	copy(cfg.PeerID[:], "-FL0001-testpeer0000")
	cfg.PeerID[19] = id
	cfg.Storage = st
	cfg.StatusInterval = 50 * time.Millisecond
	return cfg
}

// testDownload is a sub-chief with the worker it was started with: an
// idle fake named "local" that never delivers (what a local peer swarm
// without peers is to the sub-chief: it holds a lease and answers Revoke).
type testDownload struct {
	*Download
	local *fakeWorker
}

func newTestDownload(t testing.TB, cfg Config) *testDownload {
	t.Helper()
	local := newFakeWorker("local", nil)
	local.hold = true
	d, err := New(cfg, local.start())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return &testDownload{Download: d, local: local}
}

func waitComplete(t testing.TB, d *testDownload, timeout time.Duration) {
	t.Helper()
	select {
	case <-d.Complete():
	case <-time.After(timeout):
		st := d.Status()
		t.Fatalf("download not complete after %v: %+v", timeout, st)
	}
}
