package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"flotilla/delegate"
	"flotilla/internal/testenv"
	"flotilla/swarm"
	"flotilla/swarm/swarmtest"
	"flotilla/tracker"
	"flotilla/tracker/trackertest"
	"flotilla/watchdog"
)

// TestHungTrackerIsReportedOverdue: a tracker that never answers. Its
// announce intent passes the watchdog's deadline; the alert reaches the
// job, which reports Overdue naming the tracker, once, and marks it
// slow: with no peers, the TrackersSilent warning names it with
// ErrTrackerSlow. Before, the alert was only a debug line.
func TestHungTrackerIsReportedOverdue(t *testing.T) {
	const deadline = 300 * time.Millisecond
	tr := trackertest.NewHTTP()
	defer tr.Close()
	tr.SetBehavior(func(b *trackertest.HTTPBehavior) { b.Hang = true })
	tor := newTestTorrent(t, [][]string{{tr.URL}})
	c := newTestCoordinator(t, func(c *Config) {
		tc := tracker.DefaultConfig()
		tc.RequestDeadline, tc.HTTPTimeout = deadline, time.Minute
		c.Trackers = &tc
	})
	j := startTestJob(t, c, tor, t.TempDir(), nil, func(c *JobConfig) {
		c.TrackerSilentAfter, c.TrackerWarnEvery = 200*time.Millisecond, 200*time.Millisecond
	})
	var overdue []Overdue
	var silent *TrackersSilent
	for len(overdue) == 0 || silent == nil {
		switch ev := nextEvent(t, j, 20*time.Second).(type) {
		case Overdue:
			overdue = append(overdue, ev)
		case TrackersSilent:
			if len(ev.Errors) > 0 { // before the alert, none has replied yet
				silent = &ev
			}
		default:
			t.Fatalf("unexpected event %#v", ev)
		}
	}
	o := overdue[0]
	if len(overdue) != 1 || o.Kind != tracker.KindAnnounce || o.Tracker != tr.URL || o.Worker != "" ||
		o.Waited < deadline || o.Late < 0 || o.Waited < o.Late {
		t.Errorf("overdue events %+v, want one for the announce to %s", overdue, tr.URL)
	}
	if len(silent.Errors) != 1 || silent.Errors[0].URL != tr.URL || !errors.Is(silent.Errors[0].Err, ErrTrackerSlow) {
		t.Errorf("warning %+v does not name the slow tracker", *silent)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reps, err := j.Trackers(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 1 || reps[0].Overdue < 1 || reps[0].Latency.Answers != 0 || reps[0].PeerList != nil {
		t.Errorf("reports %+v, want the tracker with an overdue packet and no answer", reps)
	}
}

// TestOverdueRouting: alerts go to the job whose torrent owns the packet.
// A tracker is reported once until it answers; every missed lease is
// reported, the local swarm's as not a node, and so is a piece a node
// was late with; packets of another torrent
// or of unknown kinds are not the job's business.
func TestOverdueRouting(t *testing.T) {
	tor := newTestTorrent(t, nil)
	now := time.Now()
	j := &Job{c: &Coordinator{log: slog.New(slog.DiscardHandler)}, cfg: JobConfig{Torrent: tor},
		health: newTrackerHealth(now, time.Second, time.Second)}
	owner := func(who string) string { return fmt.Sprintf("%x %s", tor.InfoHash, who) }
	alert := func(kind, owner string) watchdog.Alert {
		return watchdog.Alert{Packet: watchdog.Packet{Kind: kind, Owner: owner, Issued: now.Add(-3 * time.Second),
			Deadline: now.Add(-time.Second)}, Late: time.Second}
	}
	const url = "udp://tracker.example:6969/announce"
	j.overdue(alert(tracker.KindAnnounce, owner(url)), now)
	j.overdue(alert(tracker.KindConnect, owner(url)), now) // still slow: not again
	j.overdue(alert(swarm.LeaseKind, owner("local")), now)
	j.overdue(alert(swarm.LeaseKind, owner("local")), now)
	j.overdue(alert(delegate.PieceKind, owner("node-a")), now)
	j.overdue(alert("other", owner("x")), now)
	j.health.record(tracker.Update{URL: url, Kind: tracker.UpdateAnnounce}, now) // it answers
	j.overdue(alert(tracker.KindSchedule, owner(url)), now)
	want := []Event{
		Overdue{Kind: tracker.KindAnnounce, Tracker: url, Waited: 3 * time.Second, Late: time.Second},
		Overdue{Kind: swarm.LeaseKind, Worker: "local", Waited: 3 * time.Second, Late: time.Second},
		Overdue{Kind: swarm.LeaseKind, Worker: "local", Waited: 3 * time.Second, Late: time.Second},
		Overdue{Kind: delegate.PieceKind, Worker: "node-a", Waited: 3 * time.Second, Late: time.Second},
		Overdue{Kind: tracker.KindSchedule, Tracker: url, Waited: 3 * time.Second, Late: time.Second},
	}
	if fmt.Sprint(j.queue) != fmt.Sprint(want) {
		t.Errorf("events\n%+v\nwant\n%+v", j.queue, want)
	}
	if _, _, ok := packetTorrent("local"); ok {
		t.Error("a bare worker name parsed as a torrent's packet")
	}
	if ih, who, ok := packetTorrent(owner(url)); !ok || ih != tor.InfoHash || who != url {
		t.Errorf("packetTorrent(%q) = %x %q %v", owner(url), ih, who, ok)
	}
}

// TestLeaseAlertReachesSubChief: a lease alert from the watchdog goes
// from the coordinator's loop to the job and on to its sub-chief, which
// returns the overdue lease to the pool (Revoke with force) and keeps the
// one that is not overdue. The sub-chief has no status tick within the
// test, so only the alert can have made it look; the watchdog runs on a
// fake clock, so only the test makes a lease overdue.
func TestLeaseAlertReachesSubChief(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 32*16<<10, 16<<10)
	var clk struct {
		sync.Mutex
		t time.Time
	}
	clk.t = time.Now()
	now := func() time.Time { clk.Lock(); defer clk.Unlock(); return clk.t }
	advance := func(d time.Duration) { clk.Lock(); clk.t = clk.t.Add(d); clk.Unlock() }
	wcfg := watchdog.DefaultConfig()
	wcfg.Now = now
	wd, err := watchdog.New(wcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer wd.Close()
	leased := func(name string) bool {
		return len(wd.Pending(func(p watchdog.Packet) bool {
			return p.Kind == swarm.LeaseKind && strings.HasSuffix(p.Owner, " "+name)
		})) > 0
	}

	dcfg := swarm.DefaultConfig()
	dcfg.InfoHash, dcfg.Info, dcfg.Storage, dcfg.Watchdog = tt.InfoHash, tt.Info, swarmtest.NewStorage(tt.Info, nil), wd
	dcfg.MinLease, dcfg.StatusInterval = 4, time.Hour
	local, node := newHoldWorker("local"), newHoldWorker("node-a")
	dl, err := swarm.New(dcfg, local)
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	testenv.WaitFor(t, 10*time.Second, "the local lease packet", func() bool { return leased("local") })
	advance(dcfg.LeaseTimeout / 2)
	dl.AddWorker(node)
	testenv.WaitFor(t, 10*time.Second, "the node's lease packet", func() bool { return leased("node-a") })
	advance(dcfg.LeaseTimeout / 2) // the local lease's deadline, not the node's

	c := &Coordinator{log: slog.New(slog.DiscardHandler), jobs: map[*Job]struct{}{}}
	j := &Job{c: c, cfg: JobConfig{Torrent: tt.Torrent}, dl: dl, cmds: make(chan func()), done: make(chan struct{}),
		health: newTrackerHealth(time.Now(), time.Second, time.Second)}
	c.jobs[j] = struct{}{}
	ran := make(chan struct{})
	go func() { // Job.run's part: the commands the coordinator sends
		defer close(ran)
		for {
			select {
			case f := <-j.cmds:
				f()
			case <-j.done:
				return
			}
		}
	}()
	defer func() { close(j.done); <-ran }()

	if err := wd.Check(); err != nil {
		t.Fatal(err)
	}
	var a watchdog.Alert
	select {
	case a = <-wd.Alerts():
	case <-time.After(10 * time.Second):
		t.Fatal("no lease alert")
	}
	if a.Packet.Kind != swarm.LeaseKind || !strings.HasSuffix(a.Packet.Owner, " local") {
		t.Fatalf("alert for %s %q, want the local lease", a.Packet.Kind, a.Packet.Owner)
	}
	c.routeAlert(a) // on Coordinator.run's goroutine in a coordinator
	select {
	case <-local.forced:
	case <-time.After(10 * time.Second):
		t.Fatal("the sub-chief did not return the overdue lease on the alert")
	}
	select {
	case p := <-node.forced:
		t.Fatalf("the node's lease, not overdue, was returned (%v)", p)
	default:
	}
}

// holdWorker is a swarm.Worker that holds its lease and delivers nothing;
// it reports each forced Revoke (a returned lease) on forced.
type holdWorker struct {
	name   string
	events chan swarm.WorkerEvent
	forced chan []int
	once   sync.Once
}

func newHoldWorker(name string) *holdWorker {
	return &holdWorker{name: name, events: make(chan swarm.WorkerEvent), forced: make(chan []int, 16)}
}

func (h *holdWorker) Name() string        { return h.name }
func (h *holdWorker) Assign(pieces []int) {}
func (h *holdWorker) Revoke(pieces []int, force bool) {
	if force {
		select {
		case h.forced <- append([]int(nil), pieces...):
		default:
		}
	}
}
func (h *holdWorker) Have(pieces []int)                {}
func (h *holdWorker) AddPeers(addrs []netip.AddrPort)  {}
func (h *holdWorker) Events() <-chan swarm.WorkerEvent { return h.events }
func (h *holdWorker) Release(piece int)                {}
func (h *holdWorker) Status() swarm.WorkerStatus       { return swarm.WorkerStatus{Name: h.name} }
func (h *holdWorker) Close() error                     { h.once.Do(func() { close(h.events) }); return nil }
