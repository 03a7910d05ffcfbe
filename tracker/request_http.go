package tracker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"flotilla/tracker/internal/wire"
)

// The HTTP side of a request (BEP 3, 7, 23, 48). The request runs on a
// short-lived goroutine bounded by a context (HTTPTimeout, or StopTimeout for
// "stopped"); its decoded result is handled on the pipeline goroutine.

type httpResult struct {
	resp     *AnnounceResponse
	scrape   *ScrapeStats
	answered bool // the tracker sent a reply (even a failure)
	err      error
}

func (r *request) startHTTP(now time.Time) {
	p := r.p
	var target string
	var err error
	if r.kind == UpdateScrape {
		target, err = wire.ScrapeQueryURL(p.scrapeURL, [][20]byte{p.a.infoHash})
	} else {
		ar := p.announceRequest(r.event)
		target, err = wire.AnnounceURL(p.url, &ar)
	}
	if err != nil {
		p.finish(now, false, nil, nil, fmt.Errorf("%w: %w", ErrUnsupportedURL, err))
		return
	}
	timeout := p.cfg().HTTPTimeout
	if p.stopping {
		timeout = min(timeout, p.stopBy.Sub(now))
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	r.cancel = cancel
	seq, c, kind, ih := p.seq, p.a.c, r.kind, p.a.infoHash
	go func() {
		defer cancel()
		res := c.httpDo(ctx, target, kind, ih)
		select {
		case p.inbox <- pmsg{kind: msgHTTP, seq: seq, ptr: res}:
		case <-p.a.hardStop:
		}
	}()
}

func (p *pipeline) onHTTP(seq uint32, res *httpResult) {
	if p.req == nil || seq != p.seq || p.proto != protoHTTP {
		return
	}
	p.finish(time.Now(), res.answered, res.resp, res.scrape, res.err)
}

// httpDo performs one HTTP tracker request and decodes the reply.
func (c *Client) httpDo(ctx context.Context, target string, kind UpdateKind, ih [20]byte) *httpResult {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return &httpResult{err: fmt.Errorf("%w: %w", ErrUnsupportedURL, err)}
	}
	if c.cfg.UserAgent != "" {
		req.Header.Set("User-Agent", c.cfg.UserAgent)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// A *url.Error quotes the whole request URL, our peer id included;
		// the pipeline already names the tracker.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = fmt.Errorf("%s: %w", uerr.Op, uerr.Err)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return &httpResult{err: fmt.Errorf("%w: %w", ErrTimeout, err)}
		}
		return &httpResult{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxResponseSize+1))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return &httpResult{err: fmt.Errorf("%w: reading reply: %w", ErrTimeout, err)}
		}
		return &httpResult{err: fmt.Errorf("reading reply: %w", err)}
	}
	if int64(len(body)) > c.cfg.MaxResponseSize {
		return &httpResult{answered: true, err: fmt.Errorf("%w: more than %d bytes", ErrReplyTooLarge, c.cfg.MaxResponseSize)}
	}
	res := &httpResult{answered: true}
	if kind == UpdateScrape {
		files, err := wire.DecodeHTTPScrape(body)
		if err == nil {
			st, ok := files[ih]
			if !ok {
				err = fmt.Errorf("%w: scrape reply does not mention the torrent", ErrMalformed)
			} else {
				res.scrape = &st
			}
		}
		res.err = err
	} else {
		res.resp, res.err = wire.DecodeHTTPAnnounce(body)
	}
	if resp.StatusCode != http.StatusOK {
		var te *TrackerError
		if !errors.As(res.err, &te) { // a bencoded failure reason explains the status best
			res.resp, res.scrape = nil, nil
			res.err = fmt.Errorf("%w: %s", ErrHTTPStatus, resp.Status)
		}
	}
	return res
}
