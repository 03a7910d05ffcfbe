package swarm

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"flotilla/swarm/swarmtest"
	"flotilla/watchdog"
)

func newTestWatchdog(t *testing.T) *watchdog.Watchdog {
	t.Helper()
	wd, err := watchdog.New(watchdog.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wd.Close() })
	return wd
}

// leaseAlerts drains the overdue alerts raised so far and counts the
// LeaseKind ones by worker name (the owner without the info-hash).
func leaseAlerts(t *testing.T, wd *watchdog.Watchdog) map[string]int {
	t.Helper()
	if err := wd.Check(); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for {
		select {
		case a := <-wd.Alerts():
			if a.Packet.Kind == LeaseKind {
				_, name, _ := strings.Cut(a.Packet.Owner, " ")
				out[name]++
			}
		default:
			return out
		}
	}
}

// A worker that is alive but stalls — it accepts a lease, never delivers,
// never fails and ignores revocations — misses its lease deadline: its
// lease returns to the pool, the worker that delivers completes those
// pieces, and the stalled worker is benched rather than handed them
// straight back. The watchdog decides (nobody routes its alerts here: the
// sub-chief finds the miss by asking it at a tick): it alerts for the
// stalled worker's miss and never for the good worker, whose lease
// outlives LeaseTimeout piece by piece while it keeps delivering (the
// per-piece deadlines this replaced raised false alerts for exactly that).
func TestSubChiefStalledWorkerMissesLeaseDeadline(t *testing.T) {
	const n = 128
	tt := swarmtest.NewTorrent(t, n*16<<10, 16<<10)
	cfg, st := subChiefConfig(t, tt)
	cfg.LeaseTimeout = 250 * time.Millisecond
	wd := newTestWatchdog(t)
	cfg.Watchdog = wd
	d := newTestDownload(t, cfg)
	stalled := addStalledWorker(t, d, tt, "stalled")
	// The good worker needs ~n*5 ms for the pool: it cannot run dry (and
	// start stealing or duplicating) before the stalled worker's deadline.
	good := newFakeWorker("good", tt)
	good.delay = 5 * time.Millisecond
	good.start()
	d.AddWorker(good)
	waitComplete(t, d, 15*time.Second)
	if !bytes.Equal(st.Bytes(), tt.Data) {
		t.Fatal("data differs")
	}

	stalled.mu.Lock()
	stLog := slices.Clone(stalled.log)
	stalled.mu.Unlock()
	good.mu.Lock()
	glog, gdelivered, maxHold := slices.Clone(good.log), len(good.delivered), good.maxHold
	delivered := func(p int) bool { return good.delivered[p] }
	// The lease it held until the deadline: what it was given before its
	// first forced revocation; returned[p] is the call that took p back.
	var leased []int
	returned := map[int]int64{}
	for _, c := range stLog {
		if c.revoke && c.force {
			for _, p := range c.pieces {
				if _, ok := returned[p]; !ok {
					returned[p] = c.seq
				}
			}
		} else if !c.revoke && len(returned) == 0 {
			leased = append(leased, c.pieces...)
		}
	}
	for _, p := range leased {
		if !delivered(p) {
			t.Errorf("piece %d of the stalled lease was not delivered by the good worker", p)
		}
	}
	good.mu.Unlock()
	if len(leased) == 0 {
		t.Fatalf("stalled worker never leased (calls %+v)", stLog)
	}
	for _, p := range leased {
		if returned[p] == 0 {
			t.Fatalf("piece %d of the stalled lease %v was never taken back (calls %+v)", p, leased, stLog)
		}
	}
	// Not handed straight back: a returned piece goes to the good worker
	// before the stalled one can be given it again.
	firstAssign := func(log []fakeCall, p int, after int64) int64 {
		for _, c := range log {
			if !c.revoke && c.seq > after && slices.Contains(c.pieces, p) {
				return c.seq
			}
		}
		return 0
	}
	for _, p := range leased {
		again := firstAssign(stLog, p, returned[p])
		if again == 0 {
			continue
		}
		if g := firstAssign(glog, p, returned[p]); g == 0 || g > again {
			t.Fatalf("piece %d returned from the stalled worker was given back to it (call %d) before the good worker got it (call %d)", p, again, g)
		}
	}
	t.Logf("stalled lease %d pieces returned; good worker delivered %d, longest held %v", len(leased), gdelivered, maxHold)

	alerts := leaseAlerts(t, wd)
	if alerts["stalled"] == 0 {
		t.Errorf("no watchdog alert for the stalled worker's missed lease (alerts %v)", alerts)
	}
	if maxHold <= cfg.LeaseTimeout {
		t.Fatalf("test setup: the good worker held no piece beyond LeaseTimeout (%v), so its lease was never extended", maxHold)
	}
	if alerts["good"] != 0 {
		t.Errorf("false lease alert for the good worker, which kept delivering (alerts %v)", alerts)
	}
	// Once the download is over the ledger holds no lease packet.
	d.Close()
	if err := wd.Check(); err != nil {
		t.Fatal(err)
	}
	if p := wd.Pending(func(p watchdog.Packet) bool { return p.Kind == LeaseKind }); len(p) != 0 {
		t.Fatalf("lease packets left in the watchdog: %+v", p)
	}
}
