package watchdog

import (
	"math"
	"slices"
	"strings"
	"time"
)

// ledger is the passive deadline table: no goroutines, no locks, no I/O.
// Exactly one goroutine (the Watchdog's owner) calls its methods. Instants are
// int64 nanoseconds since base on the clock's (monotonic) timeline.
//
// Pending packets live in slots (a slab reused through a free list), found by
// ID through index (an idTable), and ordered by their next due instant in an indexed binary
// min-heap, so issue, fulfil and cancel are O(log n) and finding the overdue
// packets costs O(k log n) for k due packets — never a scan.
type ledger struct {
	base       time.Time
	maxPending int
	maxKinds   int
	retention  int64 // 0: keep overdue packets until fulfilled/cancelled

	slots []entry
	free  []int32
	index idTable
	heap  []int32 // slot numbers; heap order by (due, id)

	kinds map[string]*kindState
	other *kindState // lazily created OtherKind
	last  *kindState // cache of the last kind looked up by name (not other)

	history []finished // ring
	histPos int
	histLen int

	unknown int64 // Fulfil/Cancel/Annotate/Reschedule of an ID not in the ledger

	compacted int64 // when compact last released memory

	// Rarely used per-packet strings live beside the slab to keep entries
	// small: notes set by Annotate, and the kind of packets whose figures go
	// to OtherKind.
	notes map[ID]string
	names map[ID]string
}

type kindState struct {
	name                                  string
	issued, fulfilled, cancelled, pending int64
	overdue, late, expired, dropped       int64
	alertsDropped                         int64
	hist                                  histogram
}

type entry struct {
	id       ID
	kind     *kindState // figures; the OtherKind bucket for kinds over MaxKinds
	owner    string
	issued   int64
	deadline int64
	due      int64 // heap key: deadline, then deadline+retention once overdue
	hidx     int32 // position in heap, -1 when not in it
	overdue  bool
}

type finished struct {
	e           entry
	kind, note  string
	fulfilled   bool
	fulfilledAt int64
	took        int64
}

func newLedger(base time.Time, cfg Config) *ledger {
	return &ledger{
		base:       base,
		maxPending: cfg.MaxPending,
		maxKinds:   cfg.MaxKinds,
		retention:  int64(cfg.OverdueRetention),
		index:      newIDTable(),
		kinds:      make(map[string]*kindState),
		notes:      make(map[ID]string),
		names:      make(map[ID]string),
		history:    make([]finished, cfg.History),
	}
}

func (l *ledger) kind(name string) *kindState {
	if l.last != nil && l.last.name == name {
		return l.last // consecutive packets are usually of one kind
	}
	if k, ok := l.kinds[name]; ok {
		l.last = k
		return k
	}
	if len(l.kinds) >= l.maxKinds {
		if l.other == nil {
			l.other = &kindState{name: OtherKind}
		}
		return l.other
	}
	k := &kindState{name: name}
	l.kinds[name] = k
	return k
}

func (l *ledger) len() int { return l.index.len() }

// issue adds a packet. It reports false (and counts the packet as dropped)
// when the ledger is full. id must be new: IDs come only from the
// Watchdog's atomic counter, so the hot path does not pay for a duplicate
// check.
func (l *ledger) issue(id ID, kind, owner string, issued, deadline int64) bool {
	k := l.kind(kind)
	k.issued++
	if l.index.len() >= l.maxPending {
		k.dropped++
		return false
	}
	var s int32
	if n := len(l.free); n > 0 {
		s = l.free[n-1]
		l.free = l.free[:n-1]
	} else {
		l.slots = append(l.slots, entry{})
		s = int32(len(l.slots) - 1)
	}
	l.slots[s] = entry{id: id, kind: k, owner: owner, issued: issued, deadline: deadline, due: deadline, hidx: -1}
	l.index.put(id, s)
	if k == l.other {
		l.names[id] = kind
	}
	l.heapPush(s)
	k.pending++
	return true
}

// fulfil records the answer to a packet. late is true when it came after the
// deadline (whether or not the overdue alert had been raised already).
func (l *ledger) fulfil(id ID, at, took int64) (ok, late bool) {
	s, ok := l.index.take(id)
	if !ok {
		l.unknown++
		return false, false
	}
	e := &l.slots[s]
	k := e.kind
	late = e.overdue || at > e.deadline
	k.fulfilled++
	if late {
		k.late++
	}
	k.hist.record(time.Duration(took))
	if len(l.history) > 0 {
		f := l.finish(e)
		f.fulfilled, f.fulfilledAt, f.took = true, at, took
		l.remember(f)
	}
	l.release(s)
	return true, late
}

func (l *ledger) cancel(id ID) bool {
	s, ok := l.index.take(id)
	if !ok {
		l.unknown++
		return false
	}
	l.slots[s].kind.cancelled++
	l.release(s)
	return true
}

func (l *ledger) annotate(id ID, note string) bool {
	if _, ok := l.index.get(id); !ok {
		l.unknown++
		return false
	}
	l.notes[id] = note
	return true
}

// reschedule gives a pending packet a new deadline; an overdue packet
// becomes pending again (one more alert if the new deadline passes).
func (l *ledger) reschedule(id ID, deadline int64) bool {
	s, ok := l.index.get(id)
	if !ok {
		l.unknown++
		return false
	}
	e := &l.slots[s]
	e.deadline, e.due, e.overdue = deadline, deadline, false
	if e.hidx >= 0 {
		l.heapFix(int(e.hidx))
	} else {
		l.heapPush(s)
	}
	return true
}

// remove drops slot s from the index and the heap and frees it.
func (l *ledger) remove(s int32) {
	l.index.take(l.slots[s].id)
	l.release(s)
}

// release drops slot s, already taken out of the index, from the heap and
// frees it.
func (l *ledger) release(s int32) {
	e := &l.slots[s]
	if e.hidx >= 0 {
		l.heapRemove(int(e.hidx))
	}
	e.kind.pending--
	if len(l.notes) > 0 {
		delete(l.notes, e.id)
	}
	if len(l.names) > 0 {
		delete(l.names, e.id)
	}
	*e = entry{hidx: -1}
	l.free = append(l.free, s)
}

func (l *ledger) remember(f finished) {
	if len(l.history) == 0 {
		return
	}
	l.history[l.histPos] = f
	l.histPos = (l.histPos + 1) % len(l.history)
	if l.histLen < len(l.history) {
		l.histLen++
	}
}

// compact releases the memory of a burst once the ledger is empty again
// (Go maps and slices never shrink by themselves). It acts at most once per
// compactEvery so that a ledger emptied by every batch under heavy traffic
// does not reallocate all the time.
func (l *ledger) compact(now int64) {
	if l.index.len() != 0 || cap(l.slots) <= compactAbove || now-l.compacted < compactEvery {
		return
	}
	l.compacted = now
	l.slots, l.free, l.heap = nil, nil, nil
	l.index = newIDTable()
	l.notes = make(map[ID]string)
	l.names = make(map[ID]string)
}

const (
	compactAbove = 1 << 14
	compactEvery = int64(time.Second)
)

// nextDue returns the earliest instant at which expire has work to do.
func (l *ledger) nextDue() (int64, bool) {
	if len(l.heap) == 0 {
		return 0, false
	}
	return l.slots[l.heap[0]].due, true
}

// expire handles every packet due at or before now: a packet passing its
// deadline unfulfilled is marked overdue and alert is called once for it
// (alert reports whether the alert was delivered); an overdue packet whose
// retention has run out is evicted. Returns the number of alerts raised.
func (l *ledger) expire(now int64, alert func(p Packet, late time.Duration) bool) int {
	raised := 0
	for len(l.heap) > 0 {
		s := l.heap[0]
		e := &l.slots[s]
		if e.due > now {
			break
		}
		if e.overdue { // retention over: evict
			e.kind.expired++
			if len(l.history) > 0 {
				l.remember(l.finish(e))
			}
			l.remove(s)
			continue
		}
		e.overdue = true
		e.kind.overdue++
		raised++
		if !alert(l.packet(e), time.Duration(satSub(now, e.deadline))) {
			e.kind.alertsDropped++
		}
		if l.retention > 0 {
			e.due = e.deadline + l.retention
			if e.due < e.deadline { // overflow
				e.due = e.deadline
			}
			l.heapFix(0)
		} else {
			l.heapRemove(0)
		}
	}
	return raised
}

func (l *ledger) at(n int64) time.Time { return l.base.Add(time.Duration(n)) }

func (l *ledger) packet(e *entry) Packet {
	return Packet{
		ID: e.id, Kind: l.kindName(e), Owner: e.owner, Note: l.notes[e.id],
		Issued: l.at(e.issued), Deadline: l.at(e.deadline), Overdue: e.overdue,
	}
}

func (l *ledger) kindName(e *entry) string {
	if e.kind == l.other {
		return l.names[e.id]
	}
	return e.kind.name
}

// finish captures a packet that is leaving the ledger for the history.
func (l *ledger) finish(e *entry) finished {
	return finished{e: *e, kind: l.kindName(e), note: l.notes[e.id]}
}

func (l *ledger) finishedPacket(f *finished) Packet {
	e := &f.e
	p := Packet{
		ID: e.id, Kind: f.kind, Owner: e.owner, Note: f.note,
		Issued: l.at(e.issued), Deadline: l.at(e.deadline), Overdue: e.overdue,
	}
	if f.fulfilled {
		p.Fulfilled = true
		p.FulfilledAt = l.at(f.fulfilledAt)
		p.Took = time.Duration(f.took)
		p.Overdue = f.e.overdue || f.fulfilledAt > f.e.deadline
	}
	return p
}

// overdue reports whether packet id is overdue: marked so by expire if the
// ledger holds it, otherwise (evicted, or never tracked) by its deadline.
func (l *ledger) overdue(id ID, deadline, now int64) bool {
	if s, ok := l.index.get(id); ok {
		return l.slots[s].overdue
	}
	return deadline <= now
}

// pending returns the pending packets accepted by filter (nil: all), ordered
// by deadline then ID.
func (l *ledger) pending(filter func(Packet) bool) []Packet {
	var out []Packet
	l.index.each(func(_ ID, s int32) {
		p := l.packet(&l.slots[s])
		if filter == nil || filter(p) {
			out = append(out, p)
		}
	})
	slices.SortFunc(out, func(a, b Packet) int {
		if c := a.Deadline.Compare(b.Deadline); c != 0 {
			return c
		}
		return compareID(a.ID, b.ID)
	})
	return out
}

// recent returns the finished packets still in the history, oldest first.
func (l *ledger) recent(filter func(Packet) bool) []Packet {
	var out []Packet
	n := len(l.history)
	for i := 0; i < l.histLen; i++ {
		f := &l.history[(l.histPos-l.histLen+i+n)%n]
		p := l.finishedPacket(f)
		if filter == nil || filter(p) {
			out = append(out, p)
		}
	}
	return out
}

func (l *ledger) stats() []KindStats {
	out := make([]KindStats, 0, len(l.kinds)+1)
	for _, k := range l.kinds {
		out = append(out, k.snapshot())
	}
	if l.other != nil {
		out = append(out, l.other.snapshot())
	}
	slices.SortFunc(out, func(a, b KindStats) int { return strings.Compare(a.Kind, b.Kind) })
	return out
}

func (k *kindState) snapshot() KindStats {
	return KindStats{
		Kind: k.name, Count: k.fulfilled, Pending: k.pending, Overdue: k.overdue,
		Median: k.hist.quantile(0.5), P99: k.hist.quantile(0.99), Max: time.Duration(k.hist.max),
		Issued: k.issued, Late: k.late, Cancelled: k.cancelled, Expired: k.expired,
		Dropped: k.dropped, AlertsDropped: k.alertsDropped,
	}
}

func compareID(a, b ID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Indexed binary min-heap over slot numbers, keyed by (due, id).

func (l *ledger) less(i, j int) bool {
	a, b := &l.slots[l.heap[i]], &l.slots[l.heap[j]]
	if a.due != b.due {
		return a.due < b.due
	}
	return a.id < b.id
}

func (l *ledger) swap(i, j int) {
	l.heap[i], l.heap[j] = l.heap[j], l.heap[i]
	l.slots[l.heap[i]].hidx = int32(i)
	l.slots[l.heap[j]].hidx = int32(j)
}

func (l *ledger) heapPush(s int32) {
	l.heap = append(l.heap, s)
	i := len(l.heap) - 1
	l.slots[s].hidx = int32(i)
	l.up(i)
}

func (l *ledger) heapRemove(i int) {
	last := len(l.heap) - 1
	s := l.heap[i]
	if i != last {
		l.swap(i, last)
	}
	l.heap = l.heap[:last]
	l.slots[s].hidx = -1
	if i != last {
		if !l.down(i) {
			l.up(i)
		}
	}
}

func (l *ledger) heapFix(i int) {
	if !l.down(i) {
		l.up(i)
	}
}

func (l *ledger) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !l.less(i, p) {
			return
		}
		l.swap(i, p)
		i = p
	}
}

// down sifts i down and reports whether it moved.
func (l *ledger) down(i int) bool {
	start := i
	n := len(l.heap)
	for {
		c := 2*i + 1
		if c >= n || c < 0 {
			break
		}
		if r := c + 1; r < n && l.less(r, c) {
			c = r
		}
		if !l.less(c, i) {
			break
		}
		l.swap(i, c)
		i = c
	}
	return i > start
}

// satSub returns a-b, saturated to the int64 range.
func satSub(a, b int64) int64 {
	d := a - b
	if (b < 0 && d < a) || (b > 0 && d > a) {
		if b < 0 {
			return math.MaxInt64
		}
		return math.MinInt64
	}
	return d
}

// satAdd returns a+b, saturated to the int64 range.
func satAdd(a, b int64) int64 {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		if b > 0 {
			return math.MaxInt64
		}
		return math.MinInt64
	}
	return s
}
