package tracker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"flotilla/metainfo"
)

// ProbeResult is what one tracker said to a one-shot Probe.
type ProbeResult struct {
	URL      string
	Tier     int
	Protocol string            // "http" or "udp"; "" if the URL was unusable
	Response *AnnounceResponse // reply to "started": peers, seeders, leechers, interval
	Err      error             // the "started" announce failed (or the URL is unusable)
	Took     time.Duration     // how long "started" took
	// Scrape holds the counts after our "started" (nil: unsupported or failed, see ScrapeErr).
	Scrape    *ScrapeStats
	ScrapeErr error
	StopErr   error // the "stopped" announce failed
}

type probeState struct {
	res       ProbeResult
	phase     uint8 // probeStart ... probeDone
	delivered bool
}

const (
	probeStart uint8 = iota
	probeAnnouncing
	probeScrape
	probeScraping
	probeStop
	probeStopping
	probeDone
)

// Probe announces "started" to every tracker of t (all tiers, concurrently,
// each in its own pipeline), scrapes those that support it, announces
// "stopped", and returns one result per tracker URL in tier order. Trackers
// still unanswered when ctx ends report ctx's error. This is the engine of
// `coord announce`.
func (c *Client) Probe(ctx context.Context, t *metainfo.Torrent, params AnnounceParams) []ProbeResult {
	return c.ProbeTiers(ctx, t.InfoHash, t.Tiers(), params)
}

// ProbeTiers is Probe for a bare info-hash and tier list.
func (c *Client) ProbeTiers(ctx context.Context, infoHash [20]byte, tiers [][]string, params AnnounceParams) []ProbeResult {
	begun := time.Now()
	a := newAnnouncer(c, TorrentConfig{InfoHash: infoHash, Tiers: tiers, Params: params}, true)
	got := map[string]ProbeResult{}
	for _, r := range a.skipped {
		got[r.URL] = r
	}
	if err := c.track(a); err != nil {
		for _, p := range a.pipes {
			got[p.url] = ProbeResult{URL: p.url, Tier: int(p.tier), Protocol: p.proto.String(), Err: err}
		}
	} else {
		a.start()
	wait:
		for len(got) < len(a.pipes)+len(a.skipped) {
			select {
			case r := <-a.probeOut:
				got[r.URL] = r
			case <-ctx.Done():
				break wait
			}
		}
		a.Close()
		for {
			select {
			case r := <-a.probeOut:
				if _, ok := got[r.URL]; !ok {
					got[r.URL] = r
				}
				continue
			default:
			}
			break
		}
	}
	var out []ProbeResult
	seen := map[string]bool{}
	for ti, tier := range tiers {
		for _, u := range tier {
			if seen[u] || u == "" {
				continue
			}
			seen[u] = true
			r, ok := got[u]
			if !ok || (errors.Is(r.Err, ErrClosed) && ctx.Err() != nil) {
				// cut short by ctx: say so, and count a deadline as a timeout
				r.URL, r.Tier, r.Took = u, ti, time.Since(begun)
				r.Err = fmt.Errorf("%s: %w", u, context.Cause(ctx))
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					r.Err = fmt.Errorf("%s: %w: %w", u, ErrTimeout, context.Cause(ctx))
				}
			}
			out = append(out, r)
		}
	}
	return out
}

// probeStep drives a probe pipeline; it reports true when done.
func (p *pipeline) probeStep() bool {
	ps := p.probe
	now := time.Now()
	if p.stopping {
		if !ps.delivered {
			if ps.res.Response == nil && ps.res.Err == nil {
				ps.res.Err = fmt.Errorf("%s: %w", p.url, ErrClosed)
			}
			p.probeDeliver()
		}
		p.probe = nil // the regular stop path sends "stopped" if needed
		return p.step(now)
	}
	if p.req != nil {
		return false
	}
	switch ps.phase {
	case probeStart:
		ps.phase = probeAnnouncing
		p.startRequest(now, UpdateAnnounce, EventStarted)
	case probeScrape:
		if p.proto == protoHTTP && p.scrapeURL == "" {
			ps.res.ScrapeErr = fmt.Errorf("%s: %w", p.url, ErrScrapeUnsupported)
			ps.phase = probeStop
			return p.probeStep()
		}
		ps.phase = probeScraping
		p.startRequest(now, UpdateScrape, EventNone)
	case probeStop:
		ps.phase = probeStopping
		p.startRequest(now, UpdateAnnounce, EventStopped)
	case probeDone:
		p.probeDeliver()
		return true
	}
	return false
}

func (p *pipeline) probeAnnounced(ev Event, took time.Duration, resp *AnnounceResponse, err error) {
	ps := p.probe
	switch ev {
	case EventStarted:
		ps.res.Response, ps.res.Err, ps.res.Took = resp, err, took
		if err != nil {
			ps.phase = probeDone
		} else {
			ps.phase = probeScrape
		}
	case EventStopped:
		ps.res.StopErr = err
		ps.phase = probeDone
	}
}

func (p *pipeline) probeScraped(st *ScrapeStats, err error) {
	p.probe.res.Scrape, p.probe.res.ScrapeErr = st, err
	p.probe.phase = probeStop
}

func (p *pipeline) probeDeliver() {
	if p.probe.delivered {
		return
	}
	p.probe.delivered = true
	select {
	case p.a.probeOut <- p.probe.res:
	default: // cannot happen: one slot per pipeline
	}
}
