package coordinator

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"flotilla/cluster"
	"flotilla/swarm"
)

// TestNodeIdentity: quarantine is keyed by a node's addresses without
// ports, so renaming, rejoining on other ports or an IPv4-mapped form do
// not give a node a new identity; another host does.
func TestNodeIdentity(t *testing.T) {
	member := func(name, delegateAddr, gossip string) cluster.Member {
		return cluster.Member{Name: name, Addr: netip.MustParseAddrPort(gossip),
			Meta: cluster.Meta{Role: cluster.RoleSwarmNode, DelegateAddr: delegateAddr}}
	}
	a := nodeIdentity(member("evil", "10.0.0.5:7001", "10.0.0.5:7946"))
	if want := "delegate=10.0.0.5 gossip=10.0.0.5"; a != want {
		t.Fatalf("identity %q, want %q", a, want)
	}
	for _, m := range []cluster.Member{
		member("renamed", "10.0.0.5:7001", "10.0.0.5:7946"),
		member("evil", "10.0.0.5:9999", "10.0.0.5:8000"),
		member("evil", "[::ffff:10.0.0.5]:7001", "[::ffff:10.0.0.5]:7946"),
	} {
		if got := nodeIdentity(m); got != a {
			t.Errorf("%s %s %s: identity %q, want %q", m.Name, m.Meta.DelegateAddr, m.Addr, got, a)
		}
	}
	if got := nodeIdentity(member("evil", "10.0.0.6:7001", "10.0.0.6:7946")); got == a {
		t.Errorf("another host has the same identity %q", got)
	}
}

// TestBackoff: 1 s after the first failure, doubling, capped at 30 s.
func TestBackoff(t *testing.T) {
	for failures, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 5: 16 * time.Second, 6: 30 * time.Second, 100: 30 * time.Second} {
		if got := backoff(failures); got != want {
			t.Errorf("backoff(%d) = %v, want %v", failures, got, want)
		}
	}
}

// TestNodeLinkReportsQuarantine: a quarantine verdict in the sub-chief's
// status is reported once, and a failed dial is reported with the node's
// name and address and retried only after the back-off.
func TestNodeLinkReportsQuarantine(t *testing.T) {
	var events []Event
	l := &nodeLink{emit: func(ev Event) { events = append(events, ev) },
		nodes: map[string]*remoteNode{}, quarantined: map[string]bool{}}
	st := swarm.Status{Workers: []swarm.WorkerStatus{{Name: "evil", State: swarm.WorkerQuarantined, Identity: "delegate=10.0.0.5 gossip=10.0.0.5"}}}
	l.takeVerdicts(st)
	l.takeVerdicts(st)
	n := &remoteNode{addr: "10.0.0.5:7001", id: "delegate=10.0.0.5 gossip=10.0.0.5"}
	l.nodes["evil2"] = n
	l.maybeDial("evil2", n, time.Now())
	l.maybeDial("evil2", n, time.Now())
	if len(events) != 2 {
		t.Fatalf("events %#v, want one NodeQuarantined and one NodeRefused", events)
	}
	if ev, ok := events[0].(NodeQuarantined); !ok || ev.Name != "evil" {
		t.Errorf("first event %#v", events[0])
	}
	if ev, ok := events[1].(NodeRefused); !ok || ev.Name != "evil2" || ev.Identity != n.id {
		t.Errorf("second event %#v", events[1])
	}

	events = nil
	other := &remoteNode{addr: "10.0.0.7:7001", id: "delegate=10.0.0.7 gossip=10.0.0.7", dialing: true}
	l.nodes["slow"] = other
	refused := errors.New("connection refused")
	l.dialDone(dialResult{name: "slow", addr: other.addr, id: other.id, err: refused}, nil)
	if len(events) != 1 {
		t.Fatalf("events %#v, want one NodeDialFailed", events)
	}
	if ev, ok := events[0].(NodeDialFailed); !ok || ev.Name != "slow" || ev.Addr != other.addr || ev.Err != refused {
		t.Errorf("event %#v", events[0])
	}
	if other.dialing || other.failures != 1 || time.Until(other.nextTry) <= 0 {
		t.Errorf("after a failed dial: %+v, want a back-off", *other)
	}
}

// The link tells the sub-chief how many sessions it is opening whenever
// that changes (a dial starts, ends, or its node leaves), and only then.
func TestNodeLinkTellsExpectedSessions(t *testing.T) {
	var told []int
	l := &nodeLink{nodes: map[string]*remoteNode{}, expect: func(n int) { told = append(told, n) }}
	l.nodes["a"] = &remoteNode{dialing: true}
	l.tellExpected()
	l.nodes["b"] = &remoteNode{dialing: true}
	l.tellExpected()
	l.tellExpected() // unchanged: not told again
	l.nodes["a"].dialing = false
	l.tellExpected()
	delete(l.nodes, "b")
	l.tellExpected()
	if want := []int{1, 2, 1, 0}; !slices.Equal(told, want) {
		t.Fatalf("told %v, want %v", told, want)
	}
}
