package tracker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"flotilla/tracker/internal/wire"
	"flotilla/watchdog"
)

// A pipeline talks to one tracker URL for one torrent (DESIGN point 1). One
// goroutine (run) owns all of its state; nothing blocks that goroutine: UDP
// goes through the shared coordinator, HTTP requests and host lookups run on
// short-lived helper goroutines whose results come back through the inbox,
// and each reply is handled on the pipeline's own goroutine (DESIGN point 4).
// Others talk to it only by setting wish flags (DESIGN point 5) or sending
// inbox messages.

type protocol uint8

const (
	protoHTTP protocol = iota + 1
	protoUDP
)

func (p protocol) String() string {
	if p == protoUDP {
		return "udp"
	}
	return "http"
}

// wish flags, set by the announcer and acted on by the pipeline.
const (
	wishActivate   uint32 = 1 << iota // become an announcing tracker
	wishDeactivate                    // stop the regular schedule (another tracker took over)
	wishCompleted                     // send "completed" on the next announce
	wishSooner                        // more peers: announce as soon as min interval allows
	wishScrape                        // scrape once
	wishStop                          // send "stopped" if started, then exit
	wishTimer                         // the pipeline's timer fired
	wishHalt                          // exit now (Announcer hard stop)
)

type msgKind uint8

const (
	msgWake msgKind = iota + 1
	msgUDP
	msgHTTP
	msgResolved
	msgCall // run fn on the pipeline goroutine (snapshots, subscriptions)
)

// pmsg is one inbox message, kept small (32 bytes): the inbox is a
// per-pipeline cost.
type pmsg struct {
	kind      msgKind
	oversized bool   // msgUDP: the datagram exceeded Config.UDPMaxReply
	seq       uint32 // request sequence number (HTTP, resolve) to drop stale results
	buf       *[]byte
	ptr       any // *httpResult, *resolveResult, func(*pipeline), error (UDP send)
}

const inboxSize = 4

type pipeline struct {
	a     *Announcer
	url   string
	owner string // watchdog owner: "<infohash> <url>"

	// protocol details, fixed at creation
	host      string // UDP: host name or literal; HTTP: unused
	port      string
	urlData   string // UDP: BEP 41 path and query
	scrapeURL string // HTTP: "" if scrape is unsupported

	inbox   chan pmsg
	deliver func(udpReply) bool // handed to the UDP coordinator
	timer   *time.Timer         // AfterFunc: sets wishTimer
	timerAt time.Time

	// announce state
	stopBy      time.Time
	trackerID   string
	interval    time.Duration
	minInterval time.Duration
	lastOK      time.Time
	nextAt      time.Time // next announce due; zero when none is scheduled
	sched       watchdog.Ticket
	lastErr     error

	req  *request // in flight
	conn udpConn

	peers   *peerList
	subs    []*PeerWatch
	probe   *probeState
	retryAt int64 // monoNanos: end of the back-off after the last failure

	// small fields together: an idle pipeline is a per-torrent-per-tracker
	// cost, and this keeps the struct in the 512-byte size class
	wishes       atomic.Uint32
	seq          uint32
	tier         int32
	failures     int32
	proto        protocol
	active       bool
	started      bool // a "started" announce succeeded and no "stopped" since
	completedDue bool
	soonerDue    bool // MorePeers arrived while an announce was in flight
	stopping     bool
	scrapeDue    bool
	// set before the goroutine starts: strict BEP 12 with other trackers
	// to fall over to (UDP gives up after Config.FailoverRetries)
	hasAlternative bool
}

// request is the one request in flight. It carries out the exchange with
// the tracker (startHTTP, startUDP and the UDP steps) on the pipeline's
// goroutine and ends it with pipeline.finish; the pipeline decides when to
// send one and what to do with the result.
type request struct {
	p      *pipeline
	kind   UpdateKind
	event  Event
	ticket watchdog.Ticket // the intent
	cancel context.CancelFunc

	// UDP
	phase      uint8 // udpResolving, udpConnecting, udpSending
	txid       uint32
	connTicket watchdog.Ticket
	attempt    int
	retryAt    time.Time
	freshConn  bool // the connection id was obtained for this request
	retried    bool // already reconnected once after an error reply
}

func newPipeline(a *Announcer, rawURL string, tier int) (*pipeline, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrUnsupportedURL, rawURL, err)
	}
	p := &pipeline{
		a:     a,
		url:   rawURL,
		tier:  int32(tier),
		owner: fmt.Sprintf("%x %s", a.infoHash, rawURL),
		inbox: make(chan pmsg, inboxSize),
		peers: newPeerList(a.c.cfg.PeerListMax, 0),
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		p.proto = protoHTTP
		if s, err := wire.ScrapeURL(rawURL); err == nil {
			p.scrapeURL = s
		}
	case "udp":
		p.proto = protoUDP
		if u.Port() == "" || u.Hostname() == "" {
			return nil, fmt.Errorf("%w: %q: udp tracker needs host and port", ErrUnsupportedURL, rawURL)
		}
		p.host, p.port = u.Hostname(), u.Port()
		if a.c.cfg.UDPSendURLData {
			p.urlData = u.EscapedPath()
			if u.RawQuery != "" {
				p.urlData += "?" + u.RawQuery
			}
		}
	default:
		return nil, fmt.Errorf("%w: %q: scheme %q", ErrUnsupportedURL, rawURL, u.Scheme)
	}
	p.deliver = func(r udpReply) bool {
		m := pmsg{kind: msgUDP, buf: r.buf, oversized: r.oversized}
		if r.err != nil {
			m.ptr = r.err
		}
		select {
		case p.inbox <- m:
			return true
		default:
			return false
		}
	}
	return p, nil
}

// wish records a wish and nudges the goroutine; it never blocks.
func (p *pipeline) wish(w uint32) {
	p.wishes.Or(w)
	select {
	case p.inbox <- pmsg{kind: msgWake}:
	default: // the inbox is not empty, so the loop will look at the wishes anyway
	}
}

func (p *pipeline) cfg() *Config { return &p.a.c.cfg }

// run is the pipeline goroutine. It blocks on its inbox only: timers,
// wishes and the hard stop all arrive as wish flags plus a nudge, which
// keeps an idle pipeline down to one parked channel receive.
func (p *pipeline) run() {
	defer p.a.wg.Done()
	defer p.cleanup()
	p.timer = time.AfterFunc(time.Hour, func() { p.wish(wishTimer) })
	p.timer.Stop()
	for {
		now := time.Now()
		if p.applyWishes(now) || p.step(now) {
			return
		}
		p.arm(now)
		p.handle(<-p.inbox)
	}
}

func (p *pipeline) cleanup() {
	p.timer.Stop()
	p.abortRequest()
	p.cancelSchedule()
	for {
		select {
		case m := <-p.inbox:
			putBuf(m.buf)
		default:
			return
		}
	}
}

func (p *pipeline) handle(m pmsg) {
	switch m.kind {
	case msgUDP:
		r := udpReply{buf: m.buf, oversized: m.oversized}
		r.err, _ = m.ptr.(error)
		if p.req == nil {
			putBuf(r.buf) // late reply to a finished request
			return
		}
		p.req.onUDP(r)
	case msgHTTP:
		p.onHTTP(m.seq, m.ptr.(*httpResult))
	case msgResolved:
		if p.req == nil || m.seq != p.seq || p.req.phase != udpResolving {
			return // the lookup of an earlier request
		}
		p.req.onResolved(m.ptr.(*resolveResult))
	case msgCall:
		m.ptr.(func(*pipeline))(p)
	}
}

// applyWishes acts on the flags others set; it reports true on a hard stop.
func (p *pipeline) applyWishes(now time.Time) bool {
	w := p.wishes.Swap(0)
	if w == 0 {
		return false
	}
	if w&wishHalt != 0 {
		return true
	}
	if w&wishTimer != 0 {
		p.timerAt = time.Time{}
		p.onTimer(now)
	}
	if w&wishStop != 0 && !p.stopping {
		p.stopping = true
		p.stopBy = now.Add(p.cfg().StopTimeout)
		p.active = false
		p.cancelSchedule()
		if p.req != nil && p.req.event != EventStopped {
			p.abortRequest()
		}
		return false
	}
	if w&wishDeactivate != 0 && w&wishActivate == 0 {
		p.active = false
		p.cancelSchedule()
	}
	announcing := p.req != nil && p.req.kind == UpdateAnnounce // its result schedules the next one
	if w&wishActivate != 0 && !p.active {
		p.active = true
		if p.nextAt.IsZero() && !announcing {
			at := now
			if p.failures > 0 && p.retryAt > monoNanos(now) {
				at = monoTime(p.retryAt) // still backing off
			}
			p.schedule(at)
		}
	}
	if w&wishCompleted != 0 {
		p.completedDue = true
		if p.active && p.started && !announcing {
			p.schedule(now)
		}
	}
	if w&wishSooner != 0 && p.active && announcing {
		p.soonerDue = true // one more announce after the one in flight
	}
	if w&wishSooner != 0 && p.active && !announcing {
		at := now
		if !p.lastOK.IsZero() {
			at = maxTime(now, p.lastOK.Add(p.minInterval))
		}
		if p.failures > 0 {
			at = maxTime(at, monoTime(p.retryAt)) // a failing tracker keeps its back-off
		}
		if p.nextAt.IsZero() || at.Before(p.nextAt) {
			p.schedule(at)
		}
	}
	if w&wishScrape != 0 {
		p.scrapeDue = true
	}
	return false
}

// step starts due work when nothing is in flight; it reports true when the
// pipeline is finished.
func (p *pipeline) step(now time.Time) bool {
	if p.probe != nil {
		return p.probeStep()
	}
	if p.stopping {
		if p.req != nil {
			return !now.Before(p.stopBy)
		}
		if !p.started || !now.Before(p.stopBy) {
			return true
		}
		p.startRequest(now, UpdateAnnounce, EventStopped)
		return false
	}
	if p.req != nil {
		return false
	}
	if p.active && !p.nextAt.IsZero() && !now.Before(p.nextAt) {
		p.a.c.wd.Fulfil(p.sched)
		p.sched, p.nextAt = watchdog.Ticket{}, time.Time{}
		p.startRequest(now, UpdateAnnounce, p.nextEvent())
		return false
	}
	if p.scrapeDue {
		p.scrapeDue = false
		if p.proto == protoHTTP && p.scrapeURL == "" {
			p.a.publish(p.update(UpdateScrape, EventNone, 0, watchdog.Ticket{}, nil, nil,
				fmt.Errorf("%s: %w", p.url, ErrScrapeUnsupported)))
			return false
		}
		p.startRequest(now, UpdateScrape, EventNone)
	}
	return false
}

func (p *pipeline) nextEvent() Event {
	switch {
	case !p.started:
		return EventStarted
	case p.completedDue:
		return EventCompleted
	}
	return EventNone
}

// schedule sets the next announce time, recorded as a watchdog IssueAt entry.
func (p *pipeline) schedule(at time.Time) {
	p.cancelSchedule()
	p.nextAt = at
	p.sched = p.a.c.wd.IssueAt(KindSchedule, p.owner, at.Add(p.cfg().ScheduleSlack))
}

func (p *pipeline) cancelSchedule() {
	if p.sched.ID != 0 {
		p.a.c.wd.Cancel(p.sched)
	}
	p.sched, p.nextAt = watchdog.Ticket{}, time.Time{}
}

// arm points the single timer at the earliest thing the pipeline waits for.
func (p *pipeline) arm(now time.Time) {
	var at time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	if p.req != nil {
		consider(p.req.retryAt)
	} else if p.active {
		consider(p.nextAt)
	}
	if p.stopping {
		consider(p.stopBy)
	}
	if at.Equal(p.timerAt) {
		return
	}
	p.timerAt = at
	if at.IsZero() {
		p.timer.Stop()
		return
	}
	p.timer.Reset(max(at.Sub(now), 0))
}

func (p *pipeline) onTimer(now time.Time) {
	if p.req != nil && !p.req.retryAt.IsZero() && !now.Before(p.req.retryAt) {
		p.req.udpTimeout(now)
	}
	// due announces and the stop deadline are handled by step
}

func (p *pipeline) startRequest(now time.Time, kind UpdateKind, ev Event) {
	p.seq++
	kindName := KindAnnounce
	if kind == UpdateScrape {
		kindName = KindScrape
	}
	r := &request{p: p, kind: kind, event: ev, ticket: p.a.c.wd.Issue(kindName, p.owner, p.cfg().RequestDeadline)}
	p.req = r
	if p.proto == protoHTTP {
		r.startHTTP(now)
	} else {
		r.startUDP(now)
	}
}

// abortRequest drops the request in flight without an update.
func (p *pipeline) abortRequest() {
	r := p.req
	if r == nil {
		return
	}
	p.req = nil
	if r.cancel != nil {
		r.cancel()
	}
	if r.txid != 0 {
		p.a.c.udp.forget(r.txid)
	}
	p.a.c.wd.Cancel(r.ticket)
	if r.connTicket.ID != 0 {
		p.a.c.wd.Cancel(r.connTicket)
	}
}

// finish ends the request in flight. answered says whether the tracker
// answered (the intent is fulfilled, even by an error reply) or not (it is
// cancelled: timeout, local error).
func (p *pipeline) finish(now time.Time, answered bool, resp *AnnounceResponse, scrape *ScrapeStats, err error) {
	r := p.req
	p.req = nil
	if r.txid != 0 {
		p.a.c.udp.forget(r.txid)
	}
	if r.cancel != nil {
		r.cancel()
	}
	if r.connTicket.ID != 0 {
		p.a.c.wd.Cancel(r.connTicket)
	}
	var took time.Duration
	if answered {
		took = p.a.c.wd.Fulfil(r.ticket)
	} else {
		p.a.c.wd.Cancel(r.ticket)
		took = now.Sub(r.ticket.Issued)
	}
	if err != nil {
		err = fmt.Errorf("%s %s: %w", p.proto, p.url, err)
		p.a.c.log.Debug("tracker request failed", "kind", r.kind.String(), "event", r.event.String(), "err", err)
	} else if resp != nil && resp.Warning != "" {
		p.a.c.log.Warn("tracker warning", "url", p.url, "warning", resp.Warning)
	}
	p.lastErr = err
	if r.kind == UpdateScrape {
		p.a.publish(p.update(UpdateScrape, EventNone, took, r.ticket, nil, scrape, err))
		if p.probe != nil {
			p.probeScraped(scrape, err)
		}
		return
	}
	if err == nil {
		p.announced(now, r.event, resp)
	} else if r.event == EventStopped {
		p.started = false // best effort: one try
	} else {
		retry := p.backOff(now)
		if p.active && !p.stopping {
			p.schedule(retry)
		}
	}
	p.a.publish(p.update(UpdateAnnounce, r.event, took, r.ticket, resp, nil, err))
	if p.probe != nil {
		p.probeAnnounced(r.event, took, resp, err)
		return
	}
	if !p.stopping {
		at := monoTime(p.retryAt)
		if err == nil {
			at = p.nextAt
		}
		p.a.report(p, err == nil, at)
	}
}

// backOff counts a failed announce and returns when to retry.
func (p *pipeline) backOff(now time.Time) time.Time {
	p.failures++
	retry := p.lastFailureRetry(now)
	p.retryAt = monoNanos(retry)
	return retry
}

func (p *pipeline) lastFailureRetry(now time.Time) time.Time {
	c := p.cfg()
	d := c.BackoffMin
	for i := int32(1); i < p.failures && d < c.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, c.BackoffMax)
	d = time.Duration(float64(d) * (0.75 + 0.5*rand.Float64()))
	return now.Add(d)
}

func (p *pipeline) announced(now time.Time, ev Event, resp *AnnounceResponse) {
	c := p.cfg()
	switch ev {
	case EventStarted:
		p.started = true
	case EventCompleted:
		p.completedDue = false
	case EventStopped:
		p.started = false
	}
	if resp.TrackerID != "" {
		p.trackerID = resp.TrackerID
	}
	p.minInterval = max(resp.MinInterval, c.MinInterval)
	p.interval = resp.Interval
	if p.interval <= 0 {
		p.interval = c.DefaultInterval
	}
	p.interval = max(p.interval, p.minInterval)
	p.failures = 0
	p.lastOK = now
	p.peers.SetTTL(time.Duration(c.PeerTTLFactor) * p.interval)
	p.peers.Expire(now)
	if p.peers.Add(now, resp.Peers) > 0 || len(resp.Peers) > 0 {
		p.notifySubs()
	}
	if p.active && !p.stopping {
		at := now.Add(p.interval)
		if p.soonerDue {
			at = now.Add(p.minInterval)
		}
		if p.completedDue && p.started {
			at = now
		}
		p.schedule(at)
	}
	p.soonerDue = false
}

func (p *pipeline) update(kind UpdateKind, ev Event, took time.Duration, t watchdog.Ticket,
	resp *AnnounceResponse, scrape *ScrapeStats, err error) Update {
	return Update{InfoHash: p.a.infoHash, URL: p.url, Tier: int(p.tier), Kind: kind, Event: ev, Took: took,
		Response: resp, Scrape: scrape, Err: err, Ticket: t}
}

func (p *pipeline) announceRequest(ev Event) wire.AnnounceRequest {
	ap := p.a.params()
	numWant := int32(-1)
	if ap.NumWant > 0 {
		numWant = int32(min(ap.NumWant, 1<<20))
	}
	if ev == EventStopped {
		numWant = 0
	}
	return wire.AnnounceRequest{
		InfoHash: p.a.infoHash, PeerID: ap.PeerID, Port: ap.Port, Key: ap.Key, NumWant: numWant,
		Uploaded: ap.Uploaded, Downloaded: ap.Downloaded, Left: ap.Left, Event: ev, TrackerID: p.trackerID,
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
