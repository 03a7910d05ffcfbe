package tracker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// TorrentConfig describes one torrent to announce.
type TorrentConfig struct {
	InfoHash [20]byte
	// Tiers are the BEP 12 tiers (metainfo.Torrent.Tiers()). URLs that are
	// not http, https or udp are skipped (and logged).
	Tiers [][]string
	// Params are the announce parameters when ParamsFunc is nil.
	Params AnnounceParams
	// ParamsFunc, if set, is called for every announce instead, for live
	// transfer counters (on pipeline goroutines: it must be fast and safe
	// for concurrent use).
	ParamsFunc func() AnnounceParams
}

// Announcer is the session of one torrent with its trackers: it owns one
// pipeline per tracker URL and applies BEP 12 — trackers are tried in tier
// order, shuffled within a tier at start; the one that answers moves to the
// front of its tier; on failure the next one (then the next tier) takes over.
// Its own goroutine owns the tier state; pipelines report to it and it
// steers them only by setting their wish flags, so a stuck tracker never
// blocks it or another pipeline.
//
// With Config.AllTiers every tier has its own active tracker (libtorrent's
// announce_to_all_tiers); otherwise one tracker serves the whole torrent.
// A tracker that failed is skipped while it backs off, and when a later
// tracker is in charge the earlier ones are tried again shortly before its
// next regular announce (BEP 12: every announce starts from the top).
type Announcer struct {
	c        *Client
	infoHash [20]byte
	paramsFn func() AnnounceParams
	params0  AnnounceParams // when paramsFn is nil

	pipes   []*pipeline
	groups  [][]*pipeline // BEP 12 order per group; groups[i][cur[i]] is active
	cur     []int
	skipped []ProbeResult // URLs that could not be used

	updates   chan Update
	dropped   atomic.Int64
	reports   chan report
	wishes    atomic.Uint32
	completed atomic.Bool
	wake      chan struct{}
	calls     chan func() // run on the announcer goroutine

	probeOut chan ProbeResult // probe mode only

	// owned by the run goroutine
	notBefore map[*pipeline]time.Time // failed trackers' back-off ends
	higher    *time.Timer             // AfterFunc: aWishHigher

	closing   chan struct{}
	hardStop  chan struct{} // pipelines exit at once
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

type report struct {
	p  *pipeline
	ok bool
	at time.Time // success: its next regular announce; failure: the end of its back-off
}

// announcer-level wishes
const (
	aWishCompleted uint32 = 1 << iota
	aWishSooner
	aWishScrape
	aWishHigher // time to try the trackers before the current one again
)

func newAnnouncer(c *Client, tc TorrentConfig, probe bool) *Announcer {
	a := &Announcer{
		c:        c,
		infoHash: tc.InfoHash,
		paramsFn: tc.ParamsFunc,
		params0:  tc.Params,
		updates:  make(chan Update, c.cfg.UpdateBuffer),
		wake:     make(chan struct{}, 1),
		calls:    make(chan func()),
		closing:  make(chan struct{}),
		hardStop: make(chan struct{}),
		done:     make(chan struct{}),
	}
	seen := map[string]bool{}
	var group []*pipeline
	for ti, tier := range tc.Tiers {
		var tp []*pipeline
		for _, u := range tier {
			if u == "" || seen[u] {
				continue
			}
			seen[u] = true
			p, err := newPipeline(a, u, ti)
			if err != nil {
				c.log.Warn("skipping tracker", "url", u, "err", err)
				a.skipped = append(a.skipped, ProbeResult{URL: u, Tier: ti, Err: err})
				continue
			}
			tp = append(tp, p)
		}
		rand.Shuffle(len(tp), func(i, j int) { tp[i], tp[j] = tp[j], tp[i] })
		a.pipes = append(a.pipes, tp...)
		if c.cfg.AllTiers && len(tp) > 0 {
			a.groups = append(a.groups, tp)
		} else {
			group = append(group, tp...)
		}
	}
	if len(group) > 0 {
		a.groups = append(a.groups, group)
		for _, p := range group {
			p.hasAlternative = len(group) > 1
		}
	}
	a.cur = make([]int, len(a.groups))
	a.reports = make(chan report, len(a.pipes)+1) // a pipeline has one request, so one report, at a time
	if probe {
		a.probeOut = make(chan ProbeResult, len(a.pipes))
		for _, p := range a.pipes {
			p.probe = &probeState{res: ProbeResult{URL: p.url, Tier: int(p.tier), Protocol: p.proto.String()}}
		}
	}
	return a
}

func (a *Announcer) start() {
	a.wg.Add(len(a.pipes))
	for _, p := range a.pipes {
		go p.run()
	}
	go a.run()
}

func (a *Announcer) params() AnnounceParams {
	if a.paramsFn != nil {
		return a.paramsFn()
	}
	return a.params0
}

// Updates delivers an Update for every finished announce and scrape. The
// channel has Config.UpdateBuffer slots; when the consumer lags the OLDEST
// update is dropped (see DroppedUpdates), so pipelines never block on it.
// It is not closed; stop reading after Close returns.
func (a *Announcer) Updates() <-chan Update { return a.updates }

// DroppedUpdates counts updates dropped because Updates was full.
func (a *Announcer) DroppedUpdates() int64 { return a.dropped.Load() }

// InfoHash returns the torrent's info-hash.
func (a *Announcer) InfoHash() [20]byte { return a.infoHash }

// Completed asks the announcing tracker(s) to be told "completed" now, when
// the download finishes. Only the first call has an effect.
func (a *Announcer) Completed() {
	if a.completed.CompareAndSwap(false, true) {
		a.aWish(aWishCompleted)
	}
}

// MorePeers asks for an announce as soon as the trackers' min interval
// allows (and, for a tracker that is failing, once its back-off is over).
// Calls while an announce is in flight ask for one more after it; several
// calls before the pipeline acts on them count as one.
func (a *Announcer) MorePeers() { a.aWish(aWishSooner) }

// Scrape asks every tracker that supports it for the torrent's counts; the
// answers come as Updates of kind UpdateScrape.
func (a *Announcer) Scrape() { a.aWish(aWishScrape) }

func (a *Announcer) aWish(w uint32) {
	a.wishes.Or(w)
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// publish hands an update to the consumer, dropping the oldest on overflow.
func (a *Announcer) publish(u Update) {
	for range 4 {
		select {
		case a.updates <- u:
			return
		default:
		}
		select {
		case <-a.updates:
			a.dropped.Add(1)
		default:
		}
	}
	a.dropped.Add(1)
}

// report tells the announcer how an announce went (pipeline goroutine).
func (a *Announcer) report(p *pipeline, ok bool, at time.Time) {
	select {
	case a.reports <- report{p: p, ok: ok, at: at}:
	case <-a.hardStop:
	}
}

func (a *Announcer) run() {
	defer close(a.done)
	a.notBefore = map[*pipeline]time.Time{}
	a.higher = time.AfterFunc(time.Hour, func() { a.aWish(aWishHigher) })
	a.higher.Stop()
	defer a.higher.Stop()
	if a.probeOut == nil {
		for _, g := range a.groups {
			g[0].wish(wishActivate)
		}
	}
	for {
		select {
		case r := <-a.reports:
			a.onReport(r)
		case <-a.wake:
			a.applyWishes()
		case f := <-a.calls:
			f()
		case <-a.closing:
			a.shutdown()
			return
		}
	}
}

func (a *Announcer) groupOf(p *pipeline) int {
	for gi, g := range a.groups {
		for _, q := range g {
			if q == p {
				return gi
			}
		}
	}
	return -1
}

func (a *Announcer) onReport(r report) {
	gi := a.groupOf(r.p)
	if gi < 0 || a.probeOut != nil {
		return
	}
	g := a.groups[gi]
	idx := slices.Index(g, r.p)
	if r.ok {
		delete(a.notBefore, r.p)
		// promote to the front of its tier
		front := idx
		for front > 0 && g[front-1].tier == r.p.tier {
			front--
		}
		copy(g[front+1:idx+1], g[front:idx])
		g[front] = r.p
		switch c := a.cur[gi]; {
		case c == idx:
			a.cur[gi] = front
		case c >= front && c < idx:
			a.cur[gi] = c + 1 // shifted by the promotion
		}
		if g[a.cur[gi]] == r.p && a.cur[gi] > 0 && !r.at.IsZero() {
			// BEP 12: earlier trackers are tried again before the next
			// regular announce (a little before it is due)
			d := time.Until(r.at)
			a.higher.Reset(max(d-min(d/10, time.Second), 0))
		}
		return
	}
	a.notBefore[r.p] = r.at
	cur := a.cur[gi]
	if g[cur] != r.p {
		return
	}
	next := a.pick(g, cur+1, len(g))
	if next == cur {
		return // the only choice: it retries after its own back-off
	}
	a.switchTo(gi, next)
}

// pick returns the first of n trackers from g[start] on (cyclically) that is
// not backing off, or the one whose back-off ends first.
func (a *Announcer) pick(g []*pipeline, start, n int) int {
	now := time.Now()
	best, bestAt := -1, time.Time{}
	for k := range n {
		j := (start + k) % len(g)
		at, failed := a.notBefore[g[j]]
		if !failed || !at.After(now) {
			return j
		}
		if best < 0 || at.Before(bestAt) {
			best, bestAt = j, at
		}
	}
	return best
}

func (a *Announcer) switchTo(gi, next int) {
	g := a.groups[gi]
	g[a.cur[gi]].wish(wishDeactivate)
	a.cur[gi] = next
	g[next].wish(wishActivate)
}

// tryHigher moves back to an earlier tracker whose back-off is over.
func (a *Announcer) tryHigher() {
	for gi, g := range a.groups {
		cur := a.cur[gi]
		if cur == 0 {
			continue
		}
		now := time.Now()
		for j := range cur {
			if at, failed := a.notBefore[g[j]]; !failed || !at.After(now) {
				a.switchTo(gi, j)
				break
			}
		}
	}
}

func (a *Announcer) applyWishes() {
	w := a.wishes.Swap(0)
	if w&aWishHigher != 0 && a.probeOut == nil {
		a.tryHigher()
	}
	for gi, g := range a.groups {
		p := g[a.cur[gi]]
		if w&aWishCompleted != 0 {
			p.wish(wishCompleted)
		}
		if w&aWishSooner != 0 {
			p.wish(wishSooner)
		}
	}
	if w&aWishScrape != 0 {
		for _, p := range a.pipes {
			p.wish(wishScrape)
		}
	}
}

func (a *Announcer) shutdown() {
	for _, p := range a.pipes {
		p.wish(wishStop)
	}
	all := make(chan struct{})
	go func() { a.wg.Wait(); close(all) }()
	t := time.NewTimer(a.c.cfg.StopTimeout + 250*time.Millisecond)
	defer t.Stop()
	select {
	case <-all:
	case <-t.C:
	}
	close(a.hardStop)
	for _, p := range a.pipes {
		p.wish(wishHalt)
	}
	<-all
}

// Close sends "stopped" (best effort, within Config.StopTimeout) to every
// tracker that got a "started", then ends the pipelines. It is idempotent.
func (a *Announcer) Close() error {
	a.closeOnce.Do(func() {
		close(a.closing)
		<-a.done
		a.c.forget(a)
	})
	return nil
}

// call runs fn on p's goroutine and waits for it.
func (a *Announcer) call(ctx context.Context, p *pipeline, fn func(*pipeline)) error {
	done := make(chan struct{})
	m := pmsg{kind: msgCall, ptr: func(p *pipeline) { fn(p); close(done) }}
	select {
	case p.inbox <- m:
	case <-ctx.Done():
		return ctx.Err()
	case <-a.hardStop:
		return ErrClosed
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-a.hardStop:
		return ErrClosed
	}
}

func (a *Announcer) pipeline(url string) (*pipeline, error) {
	for _, p := range a.pipes {
		if p.url == url {
			return p, nil
		}
	}
	return nil, fmt.Errorf("tracker %q is not one of the torrent's", url)
}

// TrackerStatus is a snapshot of one pipeline, made by its goroutine.
type TrackerStatus struct {
	URL          string
	Tier         int
	Protocol     string // "http" or "udp"
	Active       bool   // announcing on a schedule
	Started      bool   // a "started" announce succeeded
	InFlight     bool   // a request is outstanding
	Failures     int    // consecutive failures
	LastErr      error
	LastAnnounce time.Time // last successful announce
	NextAnnounce time.Time // zero when none is scheduled
	Interval     time.Duration
	MinInterval  time.Duration
	TrackerID    string
	Peers        int
}

// Status returns a snapshot of every pipeline, in the current BEP 12 order
// (tier by tier, the promoted tracker first in its tier).
func (a *Announcer) Status(ctx context.Context) ([]TrackerStatus, error) {
	order := make(chan []*pipeline, 1)
	select {
	case a.calls <- func() {
		var o []*pipeline
		for _, g := range a.groups {
			o = append(o, g...)
		}
		slices.SortStableFunc(o, func(x, y *pipeline) int { return int(x.tier - y.tier) })
		order <- o
	}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-a.done:
		return nil, ErrClosed
	}
	pipes := <-order
	out := make([]TrackerStatus, len(pipes))
	for i, p := range pipes {
		err := a.call(ctx, p, func(p *pipeline) {
			out[i] = TrackerStatus{URL: p.url, Tier: int(p.tier), Protocol: p.proto.String(), Active: p.active,
				Started: p.started, InFlight: p.req != nil, Failures: int(p.failures), LastErr: p.lastErr,
				LastAnnounce: p.lastOK, NextAnnounce: p.nextAt, Interval: p.interval,
				MinInterval: p.minInterval, TrackerID: p.trackerID, Peers: p.peers.Len()}
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// PeerWatch is a subscription to one tracker's peer list (DESIGN point 11):
// the pipeline keeps the list deduplicated, ordered by freshness, expired
// after PeerTTLFactor intervals and bounded by PeerListMax. C receives a
// (coalesced) signal whenever a reply updated the list; Peers takes a
// snapshot.
type PeerWatch struct {
	C   <-chan struct{}
	c   chan struct{}
	p   *pipeline
	url string
}

// WatchPeers subscribes to the peer list kept for tracker url.
func (a *Announcer) WatchPeers(ctx context.Context, url string) (*PeerWatch, error) {
	p, err := a.pipeline(url)
	if err != nil {
		return nil, err
	}
	w := &PeerWatch{c: make(chan struct{}, 1), p: p, url: url}
	w.C = w.c
	err = a.call(ctx, p, func(p *pipeline) {
		p.subs = append(p.subs, w)
		if p.peers.Len() > 0 {
			w.c <- struct{}{}
		}
	})
	if err != nil {
		return nil, err
	}
	return w, nil
}

// Peers returns the tracker's current peer list, freshest first.
func (w *PeerWatch) Peers(ctx context.Context) ([]PeerEntry, error) {
	var out []PeerEntry
	err := w.p.a.call(ctx, w.p, func(p *pipeline) {
		p.peers.Expire(time.Now())
		out = p.peers.Snapshot()
	})
	return out, err
}

// Close ends the subscription.
func (w *PeerWatch) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = w.p.a.call(ctx, w.p, func(p *pipeline) {
		for i, s := range p.subs {
			if s == w {
				p.subs = append(p.subs[:i], p.subs[i+1:]...)
				break
			}
		}
	})
}

func (p *pipeline) notifySubs() {
	for _, w := range p.subs {
		select {
		case w.c <- struct{}{}:
		default:
		}
	}
}

// Peers returns tracker url's current peer list, freshest first (what a
// PeerWatch on it would read now).
func (a *Announcer) Peers(ctx context.Context, url string) ([]PeerEntry, error) {
	p, err := a.pipeline(url)
	if err != nil {
		return nil, err
	}
	return (&PeerWatch{p: p, url: url}).Peers(ctx)
}
