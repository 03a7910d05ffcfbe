package tracker

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"flotilla/tracker/internal/wire"
	"flotilla/watchdog"
)

// Wire types, shared with the fake trackers of package trackertest.
type (
	// Peer is one peer address reported by a tracker.
	Peer = wire.Peer
	// AnnounceResponse is a successful announce reply.
	AnnounceResponse = wire.AnnounceResponse
	// ScrapeStats are a torrent's counts from a scrape; -1 when unknown.
	ScrapeStats = wire.ScrapeStats
	// Event is the announce event (BEP 15 numbering).
	Event = wire.Event
	// TrackerError carries a tracker's failure reason or UDP error message.
	TrackerError = wire.TrackerError
)

// Announce events.
const (
	EventNone      = wire.EventNone
	EventCompleted = wire.EventCompleted
	EventStarted   = wire.EventStarted
	EventStopped   = wire.EventStopped
)

// Errors. Test with errors.Is; they are wrapped with the tracker URL.
var (
	// ErrTrackerFailure: the tracker answered with a failure (see TrackerError).
	ErrTrackerFailure = wire.ErrTrackerFailure
	// ErrMalformed: the reply does not follow the protocol.
	ErrMalformed = wire.ErrMalformed
	// ErrScrapeUnsupported: the tracker URL has no scrape counterpart.
	ErrScrapeUnsupported = wire.ErrScrapeUnsupported
	// ErrReplyTooLarge: an HTTP body or UDP datagram exceeded the configured cap.
	ErrReplyTooLarge = errors.New("tracker reply too large")
	// ErrTimeout: no answer within the timeout / retransmission schedule.
	ErrTimeout = errors.New("tracker did not answer in time")
	// ErrHTTPStatus: the HTTP tracker answered with a non-200 status and no failure reason.
	ErrHTTPStatus = errors.New("tracker HTTP status")
	// ErrUnsupportedURL: the URL scheme is neither http(s) nor udp, or it is unparsable.
	ErrUnsupportedURL = errors.New("unsupported tracker url")
	// ErrResolve: the tracker's host name did not resolve.
	ErrResolve = errors.New("tracker host lookup failed")
	// ErrClosed: the Client or Announcer was closed.
	ErrClosed = errors.New("tracker: closed")
)

// Watchdog packet kinds used by the pipelines.
const (
	KindConnect  = "tracker.connect"  // a UDP connect request
	KindAnnounce = "tracker.announce" // an announce request (intent)
	KindScrape   = "tracker.scrape"   // a scrape request (intent)
	KindSchedule = "tracker.schedule" // "next announce due at" (IssueAt)
)

// UpdateKind says what an Update reports.
type UpdateKind uint8

// Update kinds.
const (
	UpdateAnnounce UpdateKind = iota + 1
	UpdateScrape
)

func (k UpdateKind) String() string {
	switch k {
	case UpdateAnnounce:
		return "announce"
	case UpdateScrape:
		return "scrape"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Update is the answer to one intent: an announce or scrape that succeeded
// or failed, with how long it took (measured by the watchdog).
type Update struct {
	InfoHash [20]byte
	URL      string
	Tier     int
	Kind     UpdateKind
	Event    Event
	Took     time.Duration
	Response *AnnounceResponse // announce success
	Scrape   *ScrapeStats      // scrape success
	Err      error             // failure (wrapped sentinel, e.g. ErrTimeout, ErrTrackerFailure)
	Ticket   watchdog.Ticket   // the intent's watchdog packet
}

// AnnounceParams are the per-announce values a torrent reports.
type AnnounceParams struct {
	PeerID     [20]byte
	Port       uint16
	Key        uint32 // random per session, lets a tracker recognise us across IP changes
	NumWant    int    // <= 0: let the tracker choose
	Uploaded   int64
	Downloaded int64
	Left       int64
}

// NewPeerID returns a fresh Azureus-style peer id: "-FL0001-" followed by
// 12 random letters and digits. It is the module's one peer-id generator
// (the id goes to trackers and in the peer handshake); the tail is
// printable so that trackers and clients which log or escape peer ids see
// it as it is.
func NewPeerID() [20]byte {
	const alnum = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	var id [20]byte
	copy(id[:], "-FL0001-")
	for i := 8; i < 20; i++ {
		id[i] = alnum[rand.IntN(len(alnum))]
	}
	return id
}

// NewKey returns a fresh announce key (BEP 7's "key", AnnounceParams.Key):
// a random number, drawn once per session, that lets a tracker recognise us
// across address changes.
func NewKey() uint32 { return rand.Uint32() }
