package watchdog

import (
	"errors"
	"log/slog"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// ID identifies a packet. IDs come from an atomic counter and are never 0.
type ID uint64

// Ticket is what Issue returns: the caller keeps it and hands it back to
// Fulfil or Cancel. Issued and Deadline are on the watchdog's monotonic
// timeline: the start time plus the monotonic time elapsed since, so they
// carry a monotonic reading and ignore later wall-clock steps.
type Ticket struct {
	ID       ID
	Kind     string
	Owner    string
	Issued   time.Time
	Deadline time.Time
}

// Packet is the ledger's view of one packet. Pending and Alert packets have
// Fulfilled == false; packets from Recent may be fulfilled. Times are on the
// clock's monotonic timeline (reconstructed from the watchdog's start time),
// so compare them with Equal/Before/After, not ==.
type Packet struct {
	ID          ID
	Kind        string
	Owner       string
	Issued      time.Time
	Deadline    time.Time
	FulfilledAt time.Time
	Fulfilled   bool
	Took        time.Duration
	// Overdue is true once the deadline passed unfulfilled (alert raised), or
	// for a fulfilled packet if it was fulfilled after its deadline.
	Overdue bool
	// Note is free text set with Annotate (e.g. "retransmission 2").
	Note string
}

// Alert is raised once when a packet passes its deadline unfulfilled.
type Alert struct {
	Packet Packet
	Late   time.Duration // how far past the deadline the owner noticed it
}

// KindStats are the figures for one kind of packet.
type KindStats struct {
	Kind string
	// Count is the number of fulfilled packets (the latency samples).
	Count int64
	// Pending is the number of packets in the ledger now.
	Pending int64
	// Overdue is the number of packets that passed their deadline
	// unfulfilled (one alert each, delivered or dropped).
	Overdue int64
	// Median, P99 and Max of the time from Issue to Fulfil over all fulfilled
	// packets. Median and P99 come from a log histogram (within ~3.2%); Max
	// is exact.
	Median, P99, Max time.Duration

	Issued        int64 // Issue calls seen by the owner, including dropped ones
	Late          int64 // fulfilled after the deadline (overdue or not yet noticed)
	Cancelled     int64 // removed by Cancel
	Expired       int64 // evicted after Config.OverdueRetention
	Dropped       int64 // not tracked because the ledger was full (Config.MaxPending)
	AlertsDropped int64 // overdue alerts lost because the Alerts channel was full
}

// Totals are watchdog-wide counters.
type Totals struct {
	Pending int   // packets in the ledger
	Stalls  int64 // times a caller waited because its queue shard was full
	Unknown int64 // Fulfil/Cancel/Annotate/Reschedule of a packet not in the ledger
	Batches int64 // command batches the owner applied
}

// ErrClosed is returned by Check after Close.
var ErrClosed = errors.New("watchdog: closed")

// Watchdog keeps the ledger of pending packets. One goroutine owns the
// ledger; all methods are safe for concurrent use.
type Watchdog struct {
	now       func() time.Time
	base      time.Time
	log       *slog.Logger
	_         [64]byte
	nextID    atomic.Uint64 // written by every Issue: kept on its own cache line
	_         [56]byte
	closed    atomic.Bool
	shards    []shard
	mask      uint64
	shardCap  int
	stalls    atomic.Int64
	wake      chan struct{}
	reqs      chan func(*owner)
	alerts    chan Alert
	closing   chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	final []KindStats // written by the owner before done is closed
}

// shard is one MPSC command queue: producers append under mu, the owner
// swaps the slice out. Padded so that shards do not share cache lines.
type shard struct {
	mu      sync.Mutex
	buf     []cmd
	drained sync.Cond // on mu; signalled when the owner empties a full shard
	waiters int       // callers waiting on drained (guarded by mu)
	_       [128 - 8 - 24 - 56 - 8]byte
}

type opcode uint8

const (
	opIssue opcode = iota + 1
	opFulfil
	opCancel
	opAnnotate
	opReschedule
)

// cmd is one queued command. For opIssue a, b are issued and deadline; for
// opFulfil they are fulfilled-at and took; for opReschedule b is the new
// deadline; for opAnnotate owner is the note.
type cmd struct {
	op    opcode
	id    ID
	kind  string
	owner string
	a, b  int64
}

// New starts a Watchdog. It copies cfg.
func New(cfg Config) (*Watchdog, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	base := time.Now()
	if cfg.Now != nil {
		base = cfg.Now()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := cfg.Shards
	if n == 0 {
		n = 4 * runtime.GOMAXPROCS(0)
	}
	size := 1
	for size < n {
		size <<= 1
	}
	shardCap := cfg.MaxQueued / size
	if shardCap < 1 {
		shardCap = 1
	}
	w := &Watchdog{
		now:      cfg.Now,
		base:     base,
		log:      log,
		shards:   make([]shard, size),
		mask:     uint64(size - 1),
		shardCap: shardCap,
		wake:     make(chan struct{}, 1),
		reqs:     make(chan func(*owner)),
		alerts:   make(chan Alert, cfg.AlertBuffer),
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	for i := range w.shards {
		w.shards[i].drained.L = &w.shards[i].mu
	}
	o := &owner{w: w, l: newLedger(w.base, cfg)}
	go o.run()
	return w, nil
}

// rel returns the current instant in nanoseconds since base. With the real
// clock this reads only the monotonic clock (time.Since), which is cheaper
// than time.Now.
func (w *Watchdog) rel() int64 {
	if w.now == nil {
		return int64(time.Since(w.base))
	}
	return w.nanos(w.now())
}

// at converts an instant from rel back to a time.Time (with a monotonic
// reading when base has one).
func (w *Watchdog) at(r int64) time.Time { return w.base.Add(time.Duration(r)) }

// nanos converts t to nanoseconds since base (monotonic when both have a
// monotonic reading), saturated to the int64 range.
func (w *Watchdog) nanos(t time.Time) int64 {
	d := t.Sub(w.base) // saturates at ±maxDuration
	if d == math.MinInt64 {
		d = math.MinInt64 + 1
	}
	return int64(d)
}

// Issue records a packet of the given kind, due within timeout, and returns
// its Ticket at once: the ID comes from an atomic counter and the packet
// reaches the ledger asynchronously (only a full command queue, see
// Config.MaxQueued, makes it wait). After Close it still returns a Ticket but
// records nothing.
func (w *Watchdog) Issue(kind, owner string, timeout time.Duration) Ticket {
	r := w.rel()
	return w.issue(kind, owner, r, satAdd(r, int64(timeout)))
}

// IssueAt records a packet due at deadline — e.g. a schedule entry "next
// announce due" — and returns at once. The packet is visible via Pending
// until it is fulfilled or cancelled and raises an alert if the deadline
// passes first (so pass the due time plus any grace you allow).
func (w *Watchdog) IssueAt(kind, owner string, deadline time.Time) Ticket {
	return w.issue(kind, owner, w.rel(), w.nanos(deadline))
}

func (w *Watchdog) issue(kind, owner string, issued, deadline int64) Ticket {
	id := ID(w.nextID.Add(1))
	t := Ticket{ID: id, Kind: kind, Owner: owner, Issued: w.at(issued), Deadline: w.at(deadline)}
	if !w.closed.Load() {
		w.push(cmd{op: opIssue, id: id, kind: kind, owner: owner, a: issued, b: deadline})
	}
	return t
}

// Fulfil marks the packet answered and returns how long it took (monotonic
// time since t.Issued) at once; the ledger and the kind's latency figures
// are updated asynchronously. Fulfilling an unknown, cancelled or already
// fulfilled packet only counts it in Totals.Unknown. A zero Ticket is
// ignored and took is 0.
func (w *Watchdog) Fulfil(t Ticket) time.Duration {
	if t.ID == 0 {
		return 0
	}
	r := w.rel()
	took := time.Duration(satSub(r, w.nanos(t.Issued)))
	if !w.closed.Load() {
		w.push(cmd{op: opFulfil, id: t.ID, a: r, b: int64(took)})
	}
	return took
}

// Cancel drops a pending packet without fulfilling it: no alert, no latency
// sample (counted in KindStats.Cancelled). Asynchronous like Fulfil.
func (w *Watchdog) Cancel(t Ticket) {
	if t.ID != 0 && !w.closed.Load() {
		w.push(cmd{op: opCancel, id: t.ID})
	}
}

// Annotate sets the Note of a pending packet (shown by Pending, alerts and
// Recent). Asynchronous like Fulfil.
func (w *Watchdog) Annotate(t Ticket, note string) {
	if t.ID != 0 && !w.closed.Load() {
		w.push(cmd{op: opAnnotate, id: t.ID, owner: note})
	}
}

// Reschedule moves the deadline of a pending packet (a lease extended, an
// announce interval changed) and returns the updated Ticket. A packet that
// was overdue becomes pending again and can raise a new alert at the new
// deadline. Asynchronous like Fulfil; rescheduling an unknown packet only
// counts it in Totals.Unknown.
func (w *Watchdog) Reschedule(t Ticket, deadline time.Time) Ticket {
	t.Deadline = deadline
	if t.ID != 0 && !w.closed.Load() {
		w.push(cmd{op: opReschedule, id: t.ID, b: w.nanos(deadline)})
	}
	return t
}

// push appends c to its shard (chosen by ID, so a packet's commands keep
// their order) and wakes the owner if the shard was empty. If the shard is
// full it waits for the owner to drain it (or for Close).
func (w *Watchdog) push(c cmd) {
	s := &w.shards[uint64(c.id)&w.mask]
	s.mu.Lock()
	if len(s.buf) >= w.shardCap {
		w.stalls.Add(1)
		for len(s.buf) >= w.shardCap {
			if w.closed.Load() {
				s.mu.Unlock()
				return
			}
			s.waiters++
			s.drained.Wait()
			s.waiters--
		}
	}
	n := len(s.buf)
	s.buf = append(s.buf, c)
	s.mu.Unlock()
	if n == 0 {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// Alerts returns the channel of overdue alerts. It is closed after Close.
// A consumer that lags loses alerts (counted in KindStats.AlertsDropped);
// the watchdog never blocks on it.
func (w *Watchdog) Alerts() <-chan Alert { return w.alerts }

// call runs f on the owner goroutine after it has applied every command
// queued before the call, and waits for it.
func (w *Watchdog) call(f func(*owner)) error {
	ran := make(chan struct{})
	g := func(o *owner) { f(o); close(ran) }
	select {
	case w.reqs <- g:
	case <-w.closing:
		return ErrClosed
	}
	select {
	case <-ran:
		return nil
	case <-w.done:
		return ErrClosed
	}
}

// Stats returns per-kind figures, sorted by kind, as seen by the owner after
// applying everything queued before the call. After Close it returns the
// figures as they were when the watchdog stopped.
func (w *Watchdog) Stats() []KindStats {
	var out []KindStats
	if err := w.call(func(o *owner) { out = o.l.stats() }); err != nil {
		<-w.done
		return slicesClone(w.final)
	}
	return out
}

// Pending returns the pending packets for which filter returns true (nil
// filter: all), ordered by deadline. filter runs on the owner goroutine: it
// must be quick and must not call the Watchdog. Returns nil after Close.
func (w *Watchdog) Pending(filter func(Packet) bool) []Packet {
	var out []Packet
	if w.call(func(o *owner) { out = o.l.pending(filter) }) != nil {
		return nil
	}
	return out
}

// Recent returns up to Config.History recently finished packets (fulfilled,
// or expired after their retention), oldest first, filtered like Pending.
func (w *Watchdog) Recent(filter func(Packet) bool) []Packet {
	var out []Packet
	if w.call(func(o *owner) { out = o.l.recent(filter) }) != nil {
		return nil
	}
	return out
}

// Overdue reports, for each ticket, whether its packet is overdue on the
// watchdog's clock: past its deadline unfulfilled, its alert raised
// (delivered or dropped). It is how an owner that must act on every miss
// asks the ledger about its own packets, since the Alerts channel drops
// alerts when its reader lags: treat an alert as a wake-up, and ask here
// on it and periodically. Like Check it first applies the queued commands
// and compares deadlines with Config.Now. Ask only about packets you have
// neither fulfilled nor cancelled: one the ledger does not hold (evicted
// after Config.OverdueRetention, or never tracked because the ledger was
// full) is overdue once its Ticket's deadline has passed. A zero Ticket is
// never overdue. Returns ErrClosed after Close.
func (w *Watchdog) Overdue(ts []Ticket) ([]bool, error) {
	out := make([]bool, len(ts))
	err := w.call(func(o *owner) {
		now := w.rel()
		for i, t := range ts {
			out[i] = t.ID != 0 && o.l.overdue(t.ID, w.nanos(t.Deadline), now)
		}
	})
	return out, err
}

// Totals returns watchdog-wide counters.
func (w *Watchdog) Totals() Totals {
	var t Totals
	w.call(func(o *owner) {
		t = Totals{Pending: o.l.len(), Unknown: o.l.unknown, Batches: o.batches}
	})
	t.Stalls = w.stalls.Load()
	return t
}

// Check makes the owner apply all queued commands and compare deadlines with
// Config.Now right away, and returns when it has done so. With the real
// clock the owner does this by itself; tests with a fake clock call Check
// after moving the clock. Returns ErrClosed after Close.
func (w *Watchdog) Check() error {
	return w.call(func(*owner) {})
}

// Close stops the owner goroutine and closes the Alerts channel. Pending
// packets are discarded. It is idempotent and always returns nil; after
// Close, Issue, Fulfil, Cancel and Annotate are harmless no-ops.
func (w *Watchdog) Close() error {
	w.closeOnce.Do(func() {
		w.closed.Store(true)
		close(w.closing)
	})
	<-w.done
	return nil
}

func slicesClone(s []KindStats) []KindStats {
	if s == nil {
		return nil
	}
	return append([]KindStats(nil), s...)
}

// owner is the state only the owner goroutine touches.
type owner struct {
	w       *Watchdog
	l       *ledger
	spare   [][]cmd // per shard, the buffer swapped in on the next drain
	timer   *time.Timer
	armed   bool
	armedAt int64
	batches int64

	alertDrops, issueDrops int64 // for rate-limited warnings
}

func (o *owner) run() {
	w := o.w
	defer close(w.done)
	defer close(w.alerts)
	o.spare = make([][]cmd, len(w.shards))
	o.timer = time.NewTimer(time.Hour)
	o.timer.Stop()
	defer o.timer.Stop()
	w.log.Debug("watchdog started", "shards", len(w.shards))
	for {
		select {
		case <-w.closing:
			o.drain()
			w.final = o.l.stats()
			w.log.Debug("watchdog stopped", "pending", o.l.len())
			return
		case <-w.wake:
		case <-o.timer.C:
			o.armed = false
		case f := <-w.reqs:
			o.tick()
			f(o)
			continue
		}
		o.tick()
	}
}

// tick applies the queued commands, raises due alerts and re-arms the timer.
// It reads the clock before draining, so a Fulfil that was called before a
// deadline is applied before that deadline is judged.
func (o *owner) tick() {
	now := o.w.rel()
	o.drain()
	o.l.expire(now, o.alert)
	o.l.compact(now)
	o.rearm(now)
}

func (o *owner) alert(p Packet, late time.Duration) bool {
	select {
	case o.w.alerts <- Alert{Packet: p, Late: late}:
		return true
	default:
		o.alertDrops++
		if isPow2(o.alertDrops) {
			o.w.log.Warn("watchdog: alert channel full, alert dropped",
				"kind", p.Kind, "owner", p.Owner, "dropped_total", o.alertDrops)
		}
		return false
	}
}

// isPow2 rate-limits diagnostics to the 1st, 2nd, 4th, 8th... occurrence.
func isPow2(n int64) bool { return n > 0 && n&(n-1) == 0 }

func (o *owner) drain() {
	w := o.w
	for i := range w.shards {
		s := &w.shards[i]
		s.mu.Lock()
		if len(s.buf) == 0 {
			s.mu.Unlock()
			continue
		}
		batch := s.buf
		s.buf = o.spare[i][:0]
		if s.waiters > 0 {
			s.drained.Broadcast()
		}
		s.mu.Unlock()
		o.apply(batch)
		clear(batch) // drop string references
		if cap(batch) > 1<<16 && len(batch) < cap(batch)/8 {
			batch = nil // let an outsized buffer go after a burst
		}
		o.spare[i] = batch[:0]
		o.batches++
	}
}

func (o *owner) apply(batch []cmd) {
	l := o.l
	for i := range batch {
		c := &batch[i]
		switch c.op {
		case opIssue:
			if !l.issue(c.id, c.kind, c.owner, c.a, c.b) {
				o.issueDrops++
				if isPow2(o.issueDrops) {
					o.w.log.Warn("watchdog: ledger full, packet not tracked",
						"kind", c.kind, "pending", l.len(), "dropped_total", o.issueDrops)
				}
			}
		case opFulfil:
			l.fulfil(c.id, c.a, c.b)
		case opCancel:
			l.cancel(c.id)
		case opAnnotate:
			l.annotate(c.id, c.owner)
		case opReschedule:
			l.reschedule(c.id, c.b)
		}
	}
}

// minTimer is the shortest timer the owner arms.
const minTimer = time.Millisecond

// rearm points the single timer at the earliest due instant. A timer that
// fires early (its packet was fulfilled meanwhile) is harmless.
func (o *owner) rearm(now int64) {
	due, ok := o.l.nextDue()
	if !ok {
		return // a stale armed timer will fire once, find nothing, and stop
	}
	if o.armed && o.armedAt <= due {
		return
	}
	// expire left only packets due after now, so d > 0. The floor keeps a
	// frozen fake clock from turning the timer into a busy loop; with the
	// real clock it delays an alert by at most minTimer.
	d := time.Duration(satSub(due, now))
	if d < minTimer {
		d = minTimer
	}
	o.timer.Reset(d)
	o.armed = true
	o.armedAt = due
}
