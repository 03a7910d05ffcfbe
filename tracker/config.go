package tracker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"flotilla/watchdog"
)

// ErrConfig is wrapped by Config.Validate and New.
var ErrConfig = errors.New("tracker: invalid config")

// Resolver looks up a UDP tracker's host name. *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Config configures a Client. Start from DefaultConfig; New never modifies
// the caller's copy.
type Config struct {
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// Watchdog records every intent (request) and schedule entry. nil: the
	// Client creates its own and closes it on Close.
	Watchdog *watchdog.Watchdog
	// HTTPClient performs HTTP(S) announces and scrapes. nil: a client with
	// HTTPTimeout and transparent gzip. Its own Timeout, if set, also applies.
	HTTPClient *http.Client
	// HTTPTimeout bounds one HTTP request, connection and body included.
	HTTPTimeout time.Duration
	// MaxResponseSize caps an HTTP reply body; a larger one is an error
	// (ErrReplyTooLarge).
	MaxResponseSize int64
	// UDPListen4 and UDPListen6 are the local addresses of the shared UDP
	// sockets (one per address family, opened on first use).
	UDPListen4, UDPListen6 string
	// UDPReadBuffer is the SO_RCVBUF asked for each UDP socket (best effort:
	// the kernel caps it at net.core.rmem_max). Replies to many pipelines
	// arrive in bursts.
	UDPReadBuffer int
	// UDPMaxReply caps a UDP tracker datagram; a larger one fails the
	// request with ErrReplyTooLarge.
	UDPMaxReply int
	// UDPRetryBase and UDPMaxRetries give the BEP 15 retransmission schedule:
	// the n-th transmission waits UDPRetryBase·2^n for its answer, n = 0 ..
	// UDPMaxRetries; then the request fails with ErrTimeout. BEP 15: 15 s, 8.
	UDPRetryBase  time.Duration
	UDPMaxRetries int
	// FailoverRetries replaces UDPMaxRetries for a tracker that has an
	// alternative in strict BEP 12 mode (another tracker the torrent can fall
	// over to), so one dead UDP tracker does not hold the torrent for the
	// full BEP 15 hour: with 2, it is given up after 15+30+60 s.
	FailoverRetries int
	// UDPConnIDTTL is how long a connection id is reused (BEP 15: 1 minute).
	UDPConnIDTTL time.Duration
	// UDPSendURLData sends the path and query of a udp:// URL as BEP 41
	// URLData options.
	UDPSendURLData bool
	// Resolver resolves UDP tracker host names, once per connect; nil means
	// net.DefaultResolver. ResolveTimeout bounds it. HTTP trackers are
	// resolved by HTTPClient's own dialer.
	Resolver       Resolver
	ResolveTimeout time.Duration
	// RequestDeadline is the watchdog deadline of every request intent
	// (connect, announce, scrape): an unanswered one raises an alert then.
	// The pipeline keeps retrying on its own schedule regardless.
	RequestDeadline time.Duration
	// ScheduleSlack: the "next announce due" watchdog entry has its
	// deadline this long after the due time.
	ScheduleSlack time.Duration
	// DefaultInterval is used when a tracker gives no interval; MinInterval
	// is a floor under any interval or min interval a tracker gives.
	DefaultInterval, MinInterval time.Duration
	// BackoffMin and BackoffMax bound the exponential back-off (with ±25%
	// jitter) after consecutive failures of one tracker.
	BackoffMin, BackoffMax time.Duration
	// PeerListMax bounds each per-tracker peer list; entries expire after
	// PeerTTLFactor times the tracker's interval.
	PeerListMax   int
	PeerTTLFactor int
	// UpdateBuffer is the capacity of each Announcer's Updates channel. When
	// it is full the oldest update is dropped (and counted), so a slow
	// consumer never blocks a pipeline.
	UpdateBuffer int
	// StopTimeout bounds the best-effort "stopped" announces made on Close.
	StopTimeout time.Duration
	// AllTiers announces to one tracker in every tier at once (libtorrent's
	// announce_to_all_tiers) instead of one tracker for the whole torrent
	// (strict BEP 12).
	AllTiers bool
	// UserAgent is sent with HTTP requests.
	UserAgent string
}

// DefaultConfig returns production settings (BEP 15 retransmission timing).
func DefaultConfig() Config {
	return Config{
		HTTPTimeout:     30 * time.Second,
		MaxResponseSize: 2 << 20,
		UDPListen4:      "0.0.0.0:0",
		UDPListen6:      "[::]:0",
		UDPMaxReply:     16 << 10,
		UDPReadBuffer:   4 << 20,
		UDPRetryBase:    15 * time.Second,
		UDPMaxRetries:   8,
		FailoverRetries: 2,
		UDPConnIDTTL:    time.Minute,
		UDPSendURLData:  true,
		ResolveTimeout:  10 * time.Second,
		RequestDeadline: 60 * time.Second,
		ScheduleSlack:   10 * time.Second,
		DefaultInterval: 30 * time.Minute,
		MinInterval:     30 * time.Second,
		BackoffMin:      15 * time.Second,
		BackoffMax:      30 * time.Minute,
		PeerListMax:     500,
		PeerTTLFactor:   2,
		UpdateBuffer:    8,
		StopTimeout:     5 * time.Second,
		UserAgent:       "Flotilla/0.1",
	}
}

// Validate reports whether c is usable; errors wrap ErrConfig.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.HTTPTimeout <= 0:
		return bad("HTTPTimeout %v <= 0", c.HTTPTimeout)
	case c.MaxResponseSize <= 0:
		return bad("MaxResponseSize %d <= 0", c.MaxResponseSize)
	case c.UDPMaxReply < 20 || c.UDPMaxReply > 65535:
		return bad("UDPMaxReply %d not in [20, 65535]", c.UDPMaxReply)
	case c.UDPRetryBase <= 0:
		return bad("UDPRetryBase %v <= 0", c.UDPRetryBase)
	case c.UDPMaxRetries < 0 || c.UDPMaxRetries > 16:
		return bad("UDPMaxRetries %d not in [0, 16]", c.UDPMaxRetries)
	case c.FailoverRetries < 0 || c.FailoverRetries > 16:
		return bad("FailoverRetries %d not in [0, 16]", c.FailoverRetries)
	case c.UDPConnIDTTL <= 0:
		return bad("UDPConnIDTTL %v <= 0", c.UDPConnIDTTL)
	case c.ResolveTimeout <= 0:
		return bad("ResolveTimeout %v <= 0", c.ResolveTimeout)
	case c.RequestDeadline <= 0:
		return bad("RequestDeadline %v <= 0", c.RequestDeadline)
	case c.ScheduleSlack < 0:
		return bad("ScheduleSlack %v < 0", c.ScheduleSlack)
	case c.DefaultInterval <= 0 || c.MinInterval < 0:
		return bad("DefaultInterval %v / MinInterval %v", c.DefaultInterval, c.MinInterval)
	case c.BackoffMin <= 0 || c.BackoffMax < c.BackoffMin:
		return bad("BackoffMin %v / BackoffMax %v", c.BackoffMin, c.BackoffMax)
	case c.PeerListMax < 0 || c.PeerTTLFactor < 0:
		return bad("PeerListMax %d / PeerTTLFactor %d", c.PeerListMax, c.PeerTTLFactor)
	case c.UpdateBuffer < 1:
		return bad("UpdateBuffer %d < 1", c.UpdateBuffer)
	case c.StopTimeout <= 0:
		return bad("StopTimeout %v <= 0", c.StopTimeout)
	}
	return nil
}
