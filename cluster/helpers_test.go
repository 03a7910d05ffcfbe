package cluster

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// memberlist's own goroutines notice Shutdown asynchronously, and a probe
// that was in flight runs to its end: up to a probe interval times the
// awareness multiplier (8 s with the local profile) when the probed member
// is dead. So the leak check first waits, by polling with a deadline, for
// goroutines running memberlist code to finish; whatever is still there
// after that is reported by goleak. No ignore list.
func TestMain(m *testing.M) { goleak.VerifyTestMain(drainingM{m}) }

type drainingM struct{ m *testing.M }

func (d drainingM) Run() int {
	code := d.m.Run()
	deadline := time.Now().Add(20 * time.Second)
	buf := make([]byte, 1<<20)
	for time.Now().Before(deadline) {
		n := runtime.Stack(buf, true)
		if !bytes.Contains(buf[:n], []byte("github.com/hashicorp/memberlist.")) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return code
}

// testLogger discards logs unless FLOTILLA_TEST_LOG is set. (t.Log cannot
// be used: memberlist goroutines may log after the test returned.)
func testLogger(name string) *slog.Logger {
	if os.Getenv("FLOTILLA_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("t", name)
}

func testMeta(ip string, slots int) Meta {
	return Meta{Role: RoleSwarmNode, DelegateAddr: ip + ":7000", Version: "test-1", Slots: slots, Bandwidth: int64(slots) << 20}
}

// testConfig is a fast loopback member bound to ip with a free port.
func testConfig(t testing.TB, ip string, key Key) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Name = "m-" + ip
	cfg.BindAddr = ip + ":0"
	cfg.Key = key
	cfg.Meta = testMeta(ip, 4)
	cfg.Profile = ProfileLocal
	cfg.JoinRetry = 50 * time.Millisecond
	cfg.JoinRetryMax = 400 * time.Millisecond
	cfg.Rejoin = time.Second
	cfg.UpdateTimeout = 2 * time.Second
	cfg.Logger = testLogger(t.Name() + "/" + ip)
	return cfg
}

func startMember(t testing.TB, cfg Config) *Cluster {
	t.Helper()
	c, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start %s: %v", cfg.BindAddr, err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close %s: %v", c.LocalName(), err)
		}
	})
	return c
}

// recorder reads a member's Events into a list until they are closed.
type recorder struct {
	mu   sync.Mutex
	evs  []Event
	at   []time.Time
	done chan struct{}
}

func record(t testing.TB, c *Cluster) *recorder {
	r := &recorder{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for ev := range c.Events() {
			r.mu.Lock()
			r.evs = append(r.evs, ev)
			r.at = append(r.at, time.Now())
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-r.done
	})
	return r
}

// find returns the first event of kind about name, and when it came.
func (r *recorder) find(kind EventKind, name string) (Event, time.Time, bool) {
	return r.findAfter(kind, name, time.Time{})
}

// findAfter is find for events that came after t.
func (r *recorder) findAfter(kind EventKind, name string, t time.Time) (Event, time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, ev := range r.evs {
		if ev.Kind == kind && ev.Member.Name == name && r.at[i].After(t) {
			return ev, r.at[i], true
		}
	}
	return Event{}, time.Time{}, false
}

func (r *recorder) any(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.evs {
		if ev.Member.Name == name {
			return true
		}
	}
	return false
}

func (r *recorder) wait(t testing.TB, d time.Duration, kind EventKind, name string) (Event, time.Time) {
	t.Helper()
	return r.waitAfter(t, d, kind, name, time.Time{})
}

func (r *recorder) waitAfter(t testing.TB, d time.Duration, kind EventKind, name string, after time.Time) (Event, time.Time) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if ev, at, ok := r.findAfter(kind, name, after); ok {
			return ev, at
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %v event for %s within %v", kind, name, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// converge waits until every member sees exactly want.
func converge(t testing.TB, d time.Duration, want map[string]Meta, cs ...*Cluster) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok := true
		for _, c := range cs {
			ok = ok && sees(c, want)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			for _, c := range cs {
				t.Log(describe(c))
			}
			t.Fatalf("no convergence within %v", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// never checks that cond stays false for d (an absence can only be
// observed over a period).
func never(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			t.Fatalf("%s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sees reports whether c lists exactly the named members with their metas.
func sees(c *Cluster, want map[string]Meta) bool {
	ms := c.Members()
	if len(ms) != len(want) {
		return false
	}
	for _, m := range ms {
		w, ok := want[m.Name]
		if !ok || m.Meta != w || m.State != StateAlive || m.Local != (m.Name == c.LocalName()) {
			return false
		}
	}
	return true
}

func metas(cs ...*Cluster) map[string]Meta {
	out := map[string]Meta{}
	for _, c := range cs {
		out[c.LocalName()] = c.cfg.Meta
	}
	return out
}

func describe(c *Cluster) string {
	return fmt.Sprintf("%s sees %+v", c.LocalName(), c.Members())
}
