package tracker

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"flotilla/watchdog"
)

// Client holds what all torrents share: the UDP coordinator (one socket per
// address family), the HTTP client and the watchdog. One process can hold
// many torrents: AddTorrent returns a per-torrent Announcer. All methods are
// safe for concurrent use.
type Client struct {
	cfg      Config
	log      *slog.Logger
	wd       *watchdog.Watchdog
	ownWD    bool
	http     *http.Client
	resolver Resolver
	udp      *udpCoordinator

	mu         sync.Mutex
	closed     bool
	announcers map[*Announcer]struct{}
}

// New starts a Client.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, log: cfg.Logger, wd: cfg.Watchdog, http: cfg.HTTPClient, resolver: cfg.Resolver,
		announcers: map[*Announcer]struct{}{}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.wd == nil {
		wc := watchdog.DefaultConfig()
		wc.Logger = c.log
		wd, err := watchdog.New(wc)
		if err != nil {
			return nil, fmt.Errorf("tracker: watchdog: %w", err)
		}
		c.wd, c.ownWD = wd, true
	}
	if c.http == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.ResponseHeaderTimeout = cfg.HTTPTimeout
		tr.MaxIdleConnsPerHost = 4
		c.http = &http.Client{Transport: tr, Timeout: cfg.HTTPTimeout}
	}
	if c.resolver == nil {
		c.resolver = net.DefaultResolver
	}
	c.udp = newUDPCoordinator(c.log, cfg.UDPListen4, cfg.UDPListen6, cfg.UDPMaxReply, cfg.UDPReadBuffer)
	return c, nil
}

// Watchdog returns the watchdog that records the Client's intents.
func (c *Client) Watchdog() *watchdog.Watchdog { return c.wd }

// UDPStats returns the shared UDP coordinator's counters.
func (c *Client) UDPStats() UDPStats { return c.udp.stats() }

// AddTorrent starts announcing a torrent: one pipeline per usable tracker
// URL. It fails if no URL is usable.
func (c *Client) AddTorrent(tc TorrentConfig) (*Announcer, error) {
	a := newAnnouncer(c, tc, false)
	if len(a.pipes) == 0 {
		return nil, fmt.Errorf("%w: torrent %x has no usable tracker", ErrUnsupportedURL, tc.InfoHash)
	}
	if err := c.track(a); err != nil {
		return nil, err
	}
	a.start()
	return a, nil
}

func (c *Client) track(a *Announcer) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	c.announcers[a] = struct{}{}
	return nil
}

func (c *Client) forget(a *Announcer) {
	c.mu.Lock()
	delete(c.announcers, a)
	c.mu.Unlock()
}

// Close closes every Announcer (concurrently, each sending its best-effort
// "stopped" announces), then the UDP sockets and, if the Client created it,
// the watchdog.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	as := make([]*Announcer, 0, len(c.announcers))
	for a := range c.announcers {
		as = append(as, a)
	}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, a := range as {
		wg.Go(func() { a.Close() })
	}
	wg.Wait()
	c.udp.close()
	c.http.CloseIdleConnections()
	if c.ownWD {
		return c.wd.Close()
	}
	return nil
}
