package cluster

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func node(t testing.TB, name string, m Meta, leaving bool) *memberlist.Node {
	t.Helper()
	b, err := encodeWire(wireMeta{Meta: m, Leaving: leaving})
	if err != nil {
		t.Fatal(err)
	}
	return &memberlist.Node{Name: name, Addr: net.IPv4(127, 0, 0, 1), Port: 7946, Meta: b}
}

// The callbacks return at once however many events pile up unread, and the
// queue stays bounded by real churn: updates coalesce, joins, leaves and
// failures do not.
func TestPumpNeverBlocksAndCoalesces(t *testing.T) {
	p := newPump("self", slog.New(slog.DiscardHandler))
	go p.run()
	defer p.close()

	meta := Meta{Role: RoleSwarmNode}
	p.NotifyJoin(node(t, "self", meta, false))
	const members, updates = 2000, 50
	start := time.Now()
	for i := range members {
		p.NotifyJoin(node(t, "n"+strconv.Itoa(i), meta, false))
	}
	for u := range updates {
		for i := range members {
			m := meta
			m.Slots = u + 1
			p.NotifyUpdate(node(t, "n"+strconv.Itoa(i), m, false))
		}
	}
	elapsed := time.Since(start)
	s, _ := p.snapshot()
	if s.pending != members || s.coalesced != members*updates || len(s.members) != members+1 {
		t.Fatalf("pending %d coalesced %d members %d; want %d, %d, %d",
			s.pending, s.coalesced, len(s.members), members, members*updates, members+1)
	}
	t.Logf("%d callbacks with nobody reading took %v", members*(updates+1), elapsed)

	// Ordering and the kinds that never coalesce.
	x := func(slots int) Meta { m := meta; m.Slots = slots; return m }
	p.NotifyLeave(node(t, "n0", x(50), false)) // a failure
	p.NotifyJoin(node(t, "n0", x(1), false))   // back again
	p.NotifyUpdate(node(t, "n0", x(2), false)) // coalesces into that join
	p.NotifyUpdate(node(t, "n0", x(3), true))  // leave intent: no event
	p.NotifyLeave(node(t, "n0", x(3), true))   // a graceful leave
	p.NotifyUpdate(node(t, "self", x(9), false))

	var got []Event
	for range members + 3 {
		select {
		case ev := <-p.out:
			got = append(got, ev)
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d events delivered", len(got))
		}
	}
	for i := range members {
		ev := got[i]
		if ev.Kind != EventJoin || ev.Member.Name != "n"+strconv.Itoa(i) || ev.Member.Meta.Slots != updates {
			t.Fatalf("event %d: %v %s slots %d; want the join with the latest meta", i, ev.Kind, ev.Member.Name, ev.Member.Meta.Slots)
		}
	}
	tail := got[members:]
	want := []struct {
		kind  EventKind
		state State
		slots int
	}{{EventFail, StateDead, 50}, {EventJoin, StateAlive, 2}, {EventLeave, StateLeft, 3}}
	for i, w := range want {
		ev := tail[i]
		if ev.Kind != w.kind || ev.Member.State != w.state || ev.Member.Meta.Slots != w.slots || ev.Member.Name != "n0" {
			t.Fatalf("tail event %d: %v %v slots %d, want %v %v %d", i, ev.Kind, ev.Member.State, ev.Member.Meta.Slots, w.kind, w.state, w.slots)
		}
	}
	select {
	case ev := <-p.out:
		t.Fatalf("unexpected event %+v (self or leave intent?)", ev)
	case <-time.After(50 * time.Millisecond):
	}
	s, _ = p.snapshot()
	if len(s.members) != members || s.members[len(s.members)-1].Name != "self" || s.members[len(s.members)-1].Meta.Slots != 9 {
		t.Fatalf("table has %d members, last %+v", len(s.members), s.members[len(s.members)-1])
	}
}

func TestPumpCallbacksAfterClose(t *testing.T) {
	p := newPump("self", slog.New(slog.DiscardHandler))
	go p.run()
	p.close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 { // more than the input buffer
			p.NotifyJoin(node(t, "late", Meta{Role: RoleSwarmNode}, false))
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a callback blocked after close")
	}
	if _, ok := p.snapshot(); ok {
		t.Fatal("snapshot after close")
	}
	if _, ok := <-p.out; ok {
		t.Fatal("out not closed")
	}
}

func TestMemberlistLogLevels(t *testing.T) {
	var h recordHandler
	l := newMemberlistLogger(slog.New(&h))
	l.Printf("[DEBUG] memberlist: Stream connection from=%s", "1.2.3.4:5")
	l.Printf("[WARN] memberlist: Refuting a dead message")
	l.Printf("[ERR] memberlist: failed to receive")
	l.Printf("[INFO] memberlist: hello")
	l.Printf("no level")
	want := []struct {
		level slog.Level
		msg   string
	}{
		{slog.LevelDebug, "Stream connection from=1.2.3.4:5"},
		{slog.LevelWarn, "Refuting a dead message"},
		{slog.LevelError, "failed to receive"},
		{slog.LevelInfo, "hello"},
		{slog.LevelInfo, "no level"},
	}
	if len(h.recs) != len(want) {
		t.Fatalf("%d records, want %d", len(h.recs), len(want))
	}
	for i, w := range want {
		if h.recs[i].Level != w.level || h.recs[i].Message != w.msg {
			t.Errorf("record %d: %v %q, want %v %q", i, h.recs[i].Level, h.recs[i].Message, w.level, w.msg)
		}
	}
}

type recordHandler struct{ recs []slog.Record }

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.recs = append(h.recs, r)
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }
