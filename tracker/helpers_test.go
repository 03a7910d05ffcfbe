package tracker

import (
	"errors"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"flotilla/internal/testenv"
	"flotilla/tracker/trackertest"
	"flotilla/watchdog"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func mustAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// testConfig shortens every timer: BEP 15 retransmission base 50 ms.
func testConfig() Config {
	c := DefaultConfig()
	c.UDPListen4 = "127.0.0.1:0"
	c.UDPListen6 = "[::1]:0"
	c.UDPRetryBase = 50 * time.Millisecond
	c.UDPMaxRetries = 2
	c.HTTPTimeout = 2 * time.Second
	c.RequestDeadline = time.Second
	c.ScheduleSlack = time.Second
	c.MinInterval = 0
	c.BackoffMin = 50 * time.Millisecond
	c.BackoffMax = 200 * time.Millisecond
	c.StopTimeout = 500 * time.Millisecond
	c.ResolveTimeout = time.Second
	c.UpdateBuffer = 256
	return c
}

type testClient struct {
	*Client
	wd *watchdog.Watchdog
}

func newTestClient(t testing.TB, mod func(*Config)) testClient {
	t.Helper()
	wc := watchdog.DefaultConfig()
	wd, err := watchdog.New(wc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Watchdog = wd
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		wd.Close()
	})
	return testClient{c, wd}
}

func peerID(b byte) [20]byte {
	var id [20]byte
	copy(id[:], "-FL0001-")
	for i := 8; i < 20; i++ {
		id[i] = b
	}
	return id
}

// testHash has bytes that need percent-encoding and bytes that must not get it.
var testHash = [20]byte{0x00, 0xff, 'a', '-', '.', '_', '~', ' ', '%', '&', '=', '+', 0x7f, 0x80, 'Z', '9', '/', '?', '#', 0x01}

func addTorrent(t testing.TB, c testClient, ih [20]byte, id byte, port uint16, tiers ...[]string) *Announcer {
	t.Helper()
	a, err := c.AddTorrent(TorrentConfig{InfoHash: ih, Tiers: tiers,
		Params: AnnounceParams{PeerID: peerID(id), Port: port, Left: 1000, NumWant: 50, Key: 0xdeadbeef}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// nextUpdate waits for an update matching pred, failing after timeout.
func nextUpdate(t testing.TB, a *Announcer, timeout time.Duration, what string, pred func(Update) bool) Update {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case u := <-a.Updates():
			if pred(u) {
				return u
			}
		case <-deadline.C:
			t.Fatalf("no update %s within %v", what, timeout)
		}
	}
}

func okAnnounce(ev Event) func(Update) bool {
	return func(u Update) bool { return u.Kind == UpdateAnnounce && u.Event == ev && u.Err == nil }
}

func failedAnnounce(target error) func(Update) bool {
	return func(u Update) bool { return u.Kind == UpdateAnnounce && u.Err != nil && errors.Is(u.Err, target) }
}

func newUDPTracker(t testing.TB, ip string) *trackertest.UDPTracker {
	t.Helper()
	tr, err := trackertest.NewUDP(ip)
	if err != nil {
		// IPv6 loopback (::1) is missing in some containers: skip on a
		// laptop, fail under CI, which must test IPv6.
		testenv.Unavailable(t, "cannot listen on %s: %v", ip, err)
	}
	t.Cleanup(tr.Close)
	return tr
}

func newHTTPTracker(t testing.TB) *trackertest.HTTPTracker {
	t.Helper()
	tr := trackertest.NewHTTP()
	t.Cleanup(tr.Close)
	return tr
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }

type atomicInt = atomic.Int64
