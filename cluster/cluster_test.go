package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"strconv"
	"testing"
	"time"

	"flotilla/internal/testenv"

	"github.com/hashicorp/memberlist"
)

func TestThreeMembersJoinViaOneSeed(t *testing.T) {
	t.Parallel()
	key := mustKey(t)
	seedCfg := testConfig(t, "127.0.0.11", key)
	seedCfg.Meta.Role = RoleCoordinator
	seed := startMember(t, seedCfg)
	seedEvents := record(t, seed)
	select {
	case <-seed.Joined():
	default:
		t.Fatal("a member without Join addresses should count as joined")
	}

	var members []*Cluster
	for _, ip := range []string{"127.0.0.12", "127.0.0.13"} {
		cfg := testConfig(t, ip, key)
		cfg.Join = []string{seed.Addr().String()}
		members = append(members, startMember(t, cfg))
	}
	all := append([]*Cluster{seed}, members...)
	want := metas(all...)
	for _, c := range all {
		testenv.WaitFor(t, 10*time.Second, "convergence", func() bool { return sees(c, want) })
	}
	for _, c := range members {
		select {
		case <-c.Joined():
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: Joined not closed", c.LocalName())
		}
		if err := c.JoinErr(); err != nil {
			t.Fatalf("%s: JoinErr %v after joining", c.LocalName(), err)
		}
		ev, _ := seedEvents.wait(t, 5*time.Second, EventJoin, c.LocalName())
		if ev.Member.Meta != c.cfg.Meta || ev.Member.Addr != c.Addr() || ev.Member.State != StateAlive {
			t.Fatalf("seed's join event %+v; want meta %+v addr %v", ev.Member, c.cfg.Meta, c.Addr())
		}
	}
	if seedEvents.any(seed.LocalName()) {
		t.Fatal("a member got events about itself")
	}
	if m := seed.Members(); m[0].Name != seed.LocalName() || !m[0].Local || m[0].Meta.Role != RoleCoordinator {
		t.Fatalf("seed's own entry %+v", m[0])
	}
}

func TestUpdateMetaAndLeave(t *testing.T) {
	t.Parallel()
	key := mustKey(t)
	a := startMember(t, testConfig(t, "127.0.0.21", key))
	ra := record(t, a)
	bc := testConfig(t, "127.0.0.22", key)
	bc.Join = []string{a.Addr().String()}
	b := startMember(t, bc)
	cc := testConfig(t, "127.0.0.23", key)
	cc.Join = []string{a.Addr().String()}
	c := startMember(t, cc)
	rc := record(t, c)
	testenv.WaitFor(t, 10*time.Second, "convergence", func() bool { return sees(c, metas(a, b, c)) })

	newMeta := bc.Meta
	newMeta.Slots, newMeta.Bandwidth, newMeta.Version = 9, 12345, "test-2"
	if err := b.UpdateMeta(newMeta); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*recorder{ra, rc} {
		ev, _ := r.wait(t, 5*time.Second, EventUpdate, b.LocalName())
		if ev.Member.Meta != newMeta {
			t.Fatalf("update event meta %+v, want %+v", ev.Member.Meta, newMeta)
		}
	}
	want := metas(a, b, c)
	want[b.LocalName()] = newMeta
	testenv.WaitFor(t, 5*time.Second, "members show the new meta", func() bool { return sees(a, want) && sees(c, want) })

	if err := b.UpdateMeta(Meta{Role: "boss"}); !errors.Is(err, ErrBadMeta) {
		t.Fatalf("invalid meta: err = %v, want ErrBadMeta", err)
	}

	if err := b.Leave(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*recorder{ra, rc} {
		ev, _ := r.wait(t, 5*time.Second, EventLeave, b.LocalName())
		if ev.Member.State != StateLeft {
			t.Fatalf("leave event state %v, want left", ev.Member.State)
		}
		if _, _, failed := r.find(EventFail, b.LocalName()); failed {
			t.Fatal("a graceful leave was reported as a failure")
		}
	}
	delete(want, b.LocalName())
	testenv.WaitFor(t, 5*time.Second, "members without the leaver", func() bool { return sees(a, want) && sees(c, want) })
	if err := b.UpdateMeta(newMeta); !errors.Is(err, ErrLeft) {
		t.Fatalf("UpdateMeta after Leave: %v, want ErrLeft", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	never(t, 1500*time.Millisecond, "a Close after Leave was reported as a failure", func() bool {
		_, _, failed := ra.find(EventFail, b.LocalName())
		return failed
	})
}

func TestKilledMemberFails(t *testing.T) {
	t.Parallel()
	key := mustKey(t)
	a := startMember(t, testConfig(t, "127.0.0.31", key))
	ra := record(t, a)
	var others []*Cluster
	var recs []*recorder
	for _, ip := range []string{"127.0.0.32", "127.0.0.33"} {
		cfg := testConfig(t, ip, key)
		cfg.Join = []string{a.Addr().String()}
		c := startMember(t, cfg)
		others = append(others, c)
		recs = append(recs, record(t, c))
	}
	victim := others[1]
	testenv.WaitFor(t, 10*time.Second, "convergence", func() bool { return sees(a, metas(a, others[0], victim)) })

	// A crash: memberlist stops without a leave message.
	killed := time.Now()
	if err := victim.ml.Shutdown(); err != nil {
		t.Fatal(err)
	}
	for i, r := range []*recorder{ra, recs[0]} {
		ev, at := r.wait(t, 20*time.Second, EventFail, victim.LocalName())
		if ev.Member.State != StateDead {
			t.Fatalf("fail event state %v, want dead", ev.Member.State)
		}
		t.Logf("member %d saw the failure after %v (local profile, 3 members)", i, at.Sub(killed).Round(10*time.Millisecond))
	}
	if _, _, left := ra.find(EventLeave, victim.LocalName()); left {
		t.Fatal("a crash was reported as a graceful leave")
	}
}

func TestWrongKeyCannotJoin(t *testing.T) {
	t.Parallel()
	key := mustKey(t)
	seed := startMember(t, testConfig(t, "127.0.0.41", key))
	rs := record(t, seed)

	badCfg := testConfig(t, "127.0.0.42", mustKey(t))
	badCfg.Join = []string{seed.Addr().String()}
	bad := startMember(t, badCfg)

	// A member with the right key, started after the intruder, gets in.
	goodCfg := testConfig(t, "127.0.0.43", key)
	goodCfg.Join = []string{seed.Addr().String()}
	good := startMember(t, goodCfg)
	rs.wait(t, 10*time.Second, EventJoin, good.LocalName())
	// The seed's join event can come before good's own view is complete.
	testenv.WaitFor(t, 5*time.Second, "seed and good to see each other", func() bool {
		return sees(seed, metas(seed, good)) && sees(good, metas(seed, good))
	})

	testenv.WaitFor(t, 5*time.Second, "the intruder's join to fail", func() bool { return errors.Is(bad.JoinErr(), ErrJoin) })
	never(t, 3*time.Second, "the intruder got in", func() bool {
		select {
		case <-bad.Joined():
			return true
		default:
		}
		return rs.any(bad.LocalName()) || len(bad.Members()) != 1 ||
			!sees(seed, metas(seed, good)) || !sees(good, metas(seed, good))
	})
	if !errors.Is(bad.JoinErr(), ErrJoin) {
		t.Fatalf("intruder JoinErr = %v, want ErrJoin", bad.JoinErr())
	}
}

func TestJoinByDNSNameWithManyAddresses(t *testing.T) {
	t.Parallel()
	key := mustKey(t)
	ips := []string{"127.0.0.51", "127.0.0.52", "127.0.0.53"}
	// The seeds and the joiner share a port, as pods behind a headless
	// service do; the joiner's Join entry has no port.
	var seeds []*Cluster
	var joiner *Cluster
	for attempt := 0; ; attempt++ {
		port := strconv.Itoa(testenv.FreePort(t, ips[0]))
		var started []*Cluster
		var err error
		for i, ip := range ips {
			cfg := testConfig(t, ip, key)
			cfg.BindAddr = ip + ":" + port
			if i == 2 {
				cfg.Join = []string{"seeds.flotilla.test"}
				cfg.Resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
					if host != "seeds.flotilla.test" {
						return nil, fmt.Errorf("no such host %q", host)
					}
					// .59 has nobody listening: it must not spoil the rest.
					return []netip.Addr{
						netip.MustParseAddr("127.0.0.51"), netip.MustParseAddr("127.0.0.59"),
						netip.MustParseAddr("::ffff:127.0.0.52"), netip.MustParseAddr("127.0.0.53"),
					}, nil
				}
			}
			var c *Cluster
			if c, err = Start(cfg); err != nil {
				break
			}
			started = append(started, c)
		}
		if err == nil {
			for _, c := range started {
				t.Cleanup(func() { c.Close() })
			}
			seeds, joiner = started[:2], started[2]
			break
		}
		for _, c := range started {
			c.Close()
		}
		if attempt == 5 {
			t.Fatalf("could not bind one port on all of %v: %v", ips, err)
		}
	}
	// The seeds never heard of each other: only the joiner, trying every
	// resolved address, can make one cluster of the three.
	want := metas(seeds[0], seeds[1], joiner)
	for _, c := range append(seeds, joiner) {
		testenv.WaitFor(t, 10*time.Second, "one cluster of three", func() bool { return sees(c, want) })
	}
	if err := joiner.JoinErr(); err != nil {
		t.Fatalf("JoinErr %v, although the join succeeded", err)
	}
}

func TestJoinRetriesUntilSeedStarts(t *testing.T) {
	t.Parallel()
	key := mustKey(t)
	seedAddr := "127.0.0.61:" + strconv.Itoa(testenv.FreePort(t, "127.0.0.61"))
	jc := testConfig(t, "127.0.0.62", key)
	jc.Join = []string{seedAddr}
	start := time.Now()
	joiner := startMember(t, jc)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Start blocked %v on an absent seed", d)
	}
	testenv.WaitFor(t, 5*time.Second, "a failed join attempt", func() bool { return errors.Is(joiner.JoinErr(), ErrJoin) })
	select {
	case <-joiner.Joined():
		t.Fatal("joined a seed that does not exist")
	default:
	}

	sc := testConfig(t, "127.0.0.61", key)
	sc.BindAddr = seedAddr
	seed := startMember(t, sc)
	select {
	case <-joiner.Joined():
	case <-time.After(5 * time.Second):
		t.Fatalf("no join within 5 s of the seed starting; JoinErr %v", joiner.JoinErr())
	}
	want := metas(seed, joiner)
	testenv.WaitFor(t, 5*time.Second, "both see both", func() bool { return sees(seed, want) && sees(joiner, want) })
	if err := joiner.JoinErr(); err != nil {
		t.Fatalf("JoinErr %v after joining", err)
	}
}

// A seed that crashes and restarts (a coordinator restart) is joined again
// by a node that found itself alone.
func TestRejoinRestartedSeed(t *testing.T) {
	t.Parallel()
	key := mustKey(t)
	sc := testConfig(t, "127.0.0.71", key)
	seed := startMember(t, sc)
	nc := testConfig(t, "127.0.0.72", key)
	nc.Join = []string{seed.Addr().String()}
	node := startMember(t, nc)
	rn := record(t, node)
	testenv.WaitFor(t, 10*time.Second, "convergence", func() bool { return sees(node, metas(seed, node)) })

	if err := seed.ml.Shutdown(); err != nil { // crash
		t.Fatal(err)
	}
	_, failed := rn.wait(t, 20*time.Second, EventFail, seed.LocalName())
	seed.Close()

	sc.BindAddr = seed.Addr().String()
	restarted := time.Now()
	seed2 := startMember(t, sc)
	_, rejoined := rn.waitAfter(t, 15*time.Second, EventJoin, seed.LocalName(), failed)
	t.Logf("rejoined the restarted seed %v after it restarted", rejoined.Sub(restarted).Round(10*time.Millisecond))
	want := metas(seed2, node)
	testenv.WaitFor(t, 10*time.Second, "both see both", func() bool { return sees(seed2, want) && sees(node, want) })
}

// A seed restarted on the same address answers the node's probes as its
// old self did, so the node never sees it fail and the new seed does not
// know the node. With push/pull state exchange and Rejoin out of the way,
// only the node's Refresh (called when it loses its coordinator) makes
// the restarted seed learn of it; without it the seed stays alone.
func TestRefreshAnnouncesToRestartedSeed(t *testing.T) {
	t.Parallel()
	key := mustKey(t)
	sc := testConfig(t, "127.0.0.73", key)
	sc.PushPullInterval = time.Hour
	seed := startMember(t, sc)
	nc := testConfig(t, "127.0.0.74", key)
	nc.Join = []string{seed.Addr().String()}
	nc.Rejoin = 0
	nc.PushPullInterval = time.Hour
	node := startMember(t, nc)
	testenv.WaitFor(t, 10*time.Second, "convergence", func() bool { return sees(seed, metas(seed, node)) && sees(node, metas(seed, node)) })
	// Let the join's broadcasts run out (a few gossip rounds): a node
	// mid-download has none pending, and gossip would otherwise carry
	// the node's alive message to the restarted seed.
	time.Sleep(3 * time.Second)

	// Restart faster than the node's probes can notice: it keeps the
	// old seed as alive.
	if err := seed.ml.Shutdown(); err != nil {
		t.Fatal(err)
	}
	seed.Close()
	sc.BindAddr = seed.Addr().String()
	seed2 := startMember(t, sc)
	never(t, 2*time.Second, "the restarted seed learns of the node without a refresh", func() bool { return len(seed2.Members()) > 1 })

	node.Refresh(30 * time.Second)
	want := metas(seed2, node)
	testenv.WaitFor(t, 10*time.Second, "the restarted seed sees the node after its refresh", func() bool { return sees(seed2, want) })
}

func TestEventsNeverBlockMemberlist(t *testing.T) {
	t.Parallel()
	key := mustKey(t)
	a := startMember(t, testConfig(t, "127.0.0.81", key)) // nobody reads a.Events for now
	var others []*Cluster
	for _, ip := range []string{"127.0.0.82", "127.0.0.83", "127.0.0.84"} {
		cfg := testConfig(t, ip, key)
		cfg.Join = []string{a.Addr().String()}
		others = append(others, startMember(t, cfg))
	}
	b := others[0]
	// memberlist guarantees convergence by the next push/pull (15 s).
	converge(t, 20*time.Second, metas(a, others[0], others[1], others[2]), a, others[0], others[1], others[2])
	final := b.cfg.Meta
	for i := range 5 {
		final.Slots = 10 + i
		if err := b.UpdateMeta(final); err != nil {
			t.Fatal(err)
		}
	}
	want := metas(a, others[0], others[1], others[2])
	want[b.LocalName()] = final
	// Gossip is probabilistic: an update may miss a member until the next
	// push/pull exchange (15 s), though with RetransmitMult 4 it rarely does.
	converge(t, 20*time.Second, want, append(others, a)...)
	st := a.Stats()
	if st.PendingEvents != 3 || st.CoalescedEvents == 0 || st.DeliveredEvents != 0 {
		t.Fatalf("stats %+v: want 3 pending joins with b's updates coalesced into its join", st)
	}

	got := map[string]Event{}
	for range 3 {
		select {
		case ev := <-a.Events():
			if ev.Kind != EventJoin {
				t.Fatalf("event %v, want join", ev.Kind)
			}
			got[ev.Member.Name] = ev
		case <-time.After(2 * time.Second):
			t.Fatal("pending events were not delivered")
		}
	}
	if m := got[b.LocalName()].Member.Meta; m != final {
		t.Fatalf("b's join carries meta %+v, want the latest %+v", m, final)
	}
	if len(got) != 3 {
		t.Fatalf("got joins for %v", reflect.ValueOf(got).MapKeys())
	}
}

func TestCloseIsIdempotentAndFinal(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "127.0.0.91", mustKey(t))
	cfg.Join = []string{"127.0.0.99:1"} // nobody: the join goroutine keeps retrying
	orig := cfg
	c, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Join, orig.Join) || cfg.Name != orig.Name || cfg.Resolve != nil {
		t.Fatal("Start changed the caller's config")
	}
	testenv.WaitFor(t, 5*time.Second, "a failed join", func() bool { return c.JoinErr() != nil })
	for range 2 {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := <-c.Events(); ok {
		t.Fatal("Events still open after Close")
	}
	if c.Members() != nil {
		t.Fatal("Members after Close")
	}
	if err := c.UpdateMeta(cfg.Meta); !errors.Is(err, ErrClosed) {
		t.Fatalf("UpdateMeta after Close: %v", err)
	}
	if err := c.Leave(time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("Leave after Close: %v", err)
	}
}

func TestStartRejectsBadConfig(t *testing.T) {
	good := testConfig(t, "127.0.0.1", mustKey(t))
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(*Config){
		"no key":           func(c *Config) { c.Key = Key{} },
		"bind host name":   func(c *Config) { c.BindAddr = "localhost:1" },
		"bind no port":     func(c *Config) { c.BindAddr = "127.0.0.1" },
		"advertise port":   func(c *Config) { c.AdvertiseAddr = "10.0.0.1:99999" },
		"join empty":       func(c *Config) { c.Join = []string{""} },
		"join bad port":    func(c *Config) { c.Join = []string{"seed:x"} },
		"retry zero":       func(c *Config) { c.JoinRetry = 0 },
		"retry max < min":  func(c *Config) { c.JoinRetryMax = c.JoinRetry / 2 },
		"profile":          func(c *Config) { c.Profile = "moon" },
		"role":             func(c *Config) { c.Meta.Role = "" },
		"meta too large":   func(c *Config) { c.Meta.Version = string(make([]byte, 600)) },
		"delegate no port": func(c *Config) { c.Meta.DelegateAddr = "10.0.0.1" },
		"negative slots":   func(c *Config) { c.Meta.Slots = -1 },
	}
	for name, mutate := range cases {
		cfg := good
		mutate(&cfg)
		err := cfg.Validate()
		if !errors.Is(err, ErrConfig) && !errors.Is(err, ErrBadMeta) {
			t.Errorf("%s: Validate = %v, want ErrConfig or ErrBadMeta", name, err)
		}
		if _, err := Start(cfg); err == nil {
			t.Errorf("%s: Start accepted it", name)
		}
	}
	noKey := good
	noKey.Key = Key{}
	if err := noKey.Validate(); !errors.Is(err, ErrNoKey) {
		t.Errorf("no key: %v, want ErrNoKey", err)
	}
	for _, ok := range []string{"seed", "seed:7946", "10.1.2.3", "[::1]:7946", "::1", "svc.ns.svc.cluster.local"} {
		cfg := good
		cfg.Join = []string{ok}
		if err := cfg.Validate(); err != nil {
			t.Errorf("join %q rejected: %v", ok, err)
		}
	}
}

// A plain memberlist without any key cannot join either, and the members
// never list it.
func TestUnencryptedMemberlistCannotJoin(t *testing.T) {
	t.Parallel()
	seed := startMember(t, testConfig(t, "127.0.0.45", mustKey(t)))
	rs := record(t, seed)

	mc := memberlist.DefaultLocalConfig()
	mc.Name = "plain"
	mc.BindAddr = "127.0.0.46"
	mc.BindPort = 0
	mc.Logger = newMemberlistLogger(testLogger("plain"))
	plain, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Shutdown()
	for range 3 {
		if n, err := plain.Join([]string{seed.Addr().String()}); err == nil || n != 0 {
			t.Fatalf("unencrypted join: %d reached, err %v", n, err)
		}
	}
	never(t, time.Second, "the unencrypted member got in", func() bool {
		return rs.any("plain") || len(seed.Members()) != 1 || plain.NumMembers() != 1
	})
}

func TestAdvertiseNameAndDefaultName(t *testing.T) {
	t.Parallel()
	key := mustKey(t)
	cfg := testConfig(t, "127.0.0.15", key)
	cfg.Name = ""
	cfg.AdvertiseAddr = "me.flotilla.test"
	cfg.Resolve = func(_ context.Context, host string) ([]netip.Addr, error) {
		if host != "me.flotilla.test" {
			return nil, fmt.Errorf("no such host %q", host)
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.15")}, nil
	}
	c := startMember(t, cfg)
	if c.Addr().Addr() != netip.MustParseAddr("127.0.0.15") || c.Addr().Port() == 0 {
		t.Fatalf("advertised %v", c.Addr())
	}
	host, _ := os.Hostname()
	if want := host + "@" + c.Addr().String(); c.LocalName() != want {
		t.Fatalf("default name %q, want %q", c.LocalName(), want)
	}
	// Two members on one host get distinct default names.
	jc := testConfig(t, "127.0.0.16", key)
	jc.Name = ""
	jc.Join = []string{c.Addr().String()}
	j := startMember(t, jc)
	testenv.WaitFor(t, 10*time.Second, "both listed", func() bool { return len(c.Members()) == 2 && len(j.Members()) == 2 })

	bad := cfg
	bad.AdvertiseAddr = "nowhere.flotilla.test"
	if _, err := Start(bad); !errors.Is(err, ErrConfig) {
		t.Fatalf("unresolvable advertise name: %v, want ErrConfig", err)
	}
}
