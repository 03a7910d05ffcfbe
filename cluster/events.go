package cluster

import (
	"log/slog"
	"net/netip"
	"slices"
	"strings"

	"github.com/hashicorp/memberlist"
)

// EventKind says what happened to a member.
type EventKind int

// Event kinds.
const (
	EventJoin   EventKind = iota + 1 // a member appeared (or came back after leaving or failing)
	EventLeave                       // a member left gracefully (Cluster.Leave)
	EventUpdate                      // a member changed its Meta
	EventFail                        // a member stopped answering and was declared dead
)

func (k EventKind) String() string {
	switch k {
	case EventJoin:
		return "join"
	case EventLeave:
		return "leave"
	case EventUpdate:
		return "update"
	case EventFail:
		return "fail"
	}
	return "EventKind(?)"
}

// State is a member's liveness as memberlist sees it.
type State int

// States.
const (
	StateAlive State = iota + 1
	StateSuspect
	StateDead
	StateLeft
)

func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateSuspect:
		return "suspect"
	case StateDead:
		return "dead"
	case StateLeft:
		return "left"
	}
	return "State(?)"
}

// Member is one node of the cluster.
type Member struct {
	Name    string
	Addr    netip.AddrPort // gossip address
	Meta    Meta
	MetaErr error // non-nil when the member's metadata could not be decoded (Meta is then zero)
	State   State
	Local   bool // this process
}

// Event is a change in membership, delivered on Cluster.Events.
type Event struct {
	Kind   EventKind
	Member Member

	leaving bool // the member announced it is leaving (not delivered as an Update)
}

// pump turns memberlist's event callbacks into channel messages. It is one
// goroutine that owns the member table and a queue of undelivered events:
//
//   - memberlist calls NotifyJoin/Leave/Update with its node lock held, in
//     order. The callback converts the node and hands it to the pump over a
//     buffered channel; the pump goroutine only ever waits in one select
//     that always accepts input, so a callback never waits for the
//     consumer of Events, only (briefly) for the pump itself.
//   - the queue is unbounded but coalescing: an Update for a member whose
//     previous undelivered event is a Join or Update replaces that event's
//     Member instead of queueing another. Join, Leave and Fail are never
//     dropped, so the queue grows only with real membership churn.
//
// The pump also answers Members() from its table, so a snapshot is always
// available even when nobody reads Events.
type pump struct {
	local string // name of this member; its own events are not queued
	log   *slog.Logger

	in      chan Event
	out     chan Event
	reqs    chan chan pumpSnapshot
	closeCh chan struct{}
	done    chan struct{}
}

type pumpSnapshot struct {
	members   []Member
	pending   int
	coalesced uint64
	delivered uint64
}

func newPump(local string, log *slog.Logger) *pump {
	return &pump{
		local:   local,
		log:     log,
		in:      make(chan Event, 256),
		out:     make(chan Event),
		reqs:    make(chan chan pumpSnapshot),
		closeCh: make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// run is the pump goroutine. It closes out when it stops; undelivered
// events are discarded.
func (p *pump) run() {
	defer close(p.done)
	defer close(p.out)
	var (
		table     = make(map[string]Member)
		queue     []*Event              // undelivered events, oldest first
		last      = map[string]*Event{} // newest undelivered event per member
		coalesced uint64
		delivered uint64
	)
	handle := func(ev Event) {
		switch ev.Kind {
		case EventJoin, EventUpdate:
			table[ev.Member.Name] = ev.Member
		case EventLeave, EventFail:
			delete(table, ev.Member.Name)
		}
		if ev.Member.Name == p.local || (ev.Kind == EventUpdate && ev.leaving) {
			return
		}
		if prev := last[ev.Member.Name]; prev != nil && ev.Kind == EventUpdate &&
			(prev.Kind == EventJoin || prev.Kind == EventUpdate) {
			prev.Member = ev.Member
			coalesced++
			return
		}
		e := ev
		queue = append(queue, &e)
		last[ev.Member.Name] = &e
	}
	for {
		var out chan Event
		var head Event
		if len(queue) > 0 {
			out = p.out
			head = *queue[0]
		}
		select {
		case ev := <-p.in:
			handle(ev)
		case out <- head:
			if last[head.Member.Name] == queue[0] {
				delete(last, head.Member.Name)
			}
			queue[0] = nil
			queue = queue[1:]
			if len(queue) == 0 {
				queue = nil // let the backing array go
			}
			delivered++
		case r := <-p.reqs:
			// Callbacks that returned before the request must show.
			for drained := false; !drained; {
				select {
				case ev := <-p.in:
					handle(ev)
				default:
					drained = true
				}
			}
			s := pumpSnapshot{pending: len(queue), coalesced: coalesced, delivered: delivered}
			s.members = make([]Member, 0, len(table))
			for _, m := range table {
				s.members = append(s.members, m)
			}
			slices.SortFunc(s.members, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
			r <- s
		case <-p.closeCh:
			return
		}
	}
}

// snapshot asks the pump for its table; ok is false once it stopped.
func (p *pump) snapshot() (pumpSnapshot, bool) {
	r := make(chan pumpSnapshot, 1)
	select {
	case p.reqs <- r:
		return <-r, true
	case <-p.done:
		return pumpSnapshot{}, false
	}
}

func (p *pump) push(ev Event) {
	select {
	case p.in <- ev:
	case <-p.done:
	}
}

func (p *pump) close() {
	select {
	case <-p.closeCh:
	default:
		close(p.closeCh)
	}
	<-p.done
}

// memberlist.EventDelegate. Called with memberlist's node lock held: they
// must not call back into memberlist, and must not wait on anyone but the
// pump.

func (p *pump) NotifyJoin(n *memberlist.Node)   { p.push(p.event(EventJoin, n)) }
func (p *pump) NotifyUpdate(n *memberlist.Node) { p.push(p.event(EventUpdate, n)) }
func (p *pump) NotifyLeave(n *memberlist.Node)  { p.push(p.event(EventFail, n)) }

var _ memberlist.EventDelegate = (*pump)(nil)

// event copies what we need out of n while memberlist's lock protects it.
// memberlist's n.State is not maintained (its internal nodeState shadows
// it), so the state follows from the callback, and a departure is a
// graceful leave when the member's last metadata said it was leaving (see
// wireMeta).
func (p *pump) event(kind EventKind, n *memberlist.Node) Event {
	m := Member{Name: n.Name, State: StateAlive, Local: n.Name == p.local}
	if ip, ok := netip.AddrFromSlice(n.Addr); ok {
		m.Addr = netip.AddrPortFrom(ip.Unmap(), n.Port)
	}
	w, err := decodeWire(n.Meta)
	m.Meta, m.MetaErr = w.Meta, err
	if err != nil {
		p.log.Warn("member metadata undecodable", "member", n.Name, "err", err)
	}
	if kind == EventFail {
		m.State = StateDead
		if w.Leaving {
			kind, m.State = EventLeave, StateLeft
		}
	}
	return Event{Kind: kind, Member: m, leaving: w.Leaving}
}
