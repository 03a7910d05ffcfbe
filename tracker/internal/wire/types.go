// Package wire holds the tracker wire formats: the HTTP announce/scrape query
// strings and bencoded replies (BEP 3, 7, 23, 48) and the UDP tracker
// datagrams (BEP 15, 41), for both directions so that fake trackers in tests
// and fuzz round trips use the same code. It has no goroutines and does no
// I/O; every decoder bounds its allocations by its input and never panics.
package wire

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Errors returned by the decoders; wrap them with context and test with errors.Is.
var (
	// ErrMalformed: the reply does not follow the protocol (bad bencode, short datagram, wrong types).
	ErrMalformed = errors.New("malformed tracker reply")
	// ErrTrackerFailure: the tracker answered with a failure reason or a UDP error action.
	ErrTrackerFailure = errors.New("tracker reported failure")
)

// TrackerError carries the tracker's own failure text (HTTP "failure reason"
// or the message of a UDP error action). errors.Is(err, ErrTrackerFailure) holds.
type TrackerError struct{ Reason string }

func (e *TrackerError) Error() string { return fmt.Sprintf("tracker failure: %q", e.Reason) }

// Unwrap makes errors.Is(err, ErrTrackerFailure) true.
func (e *TrackerError) Unwrap() error { return ErrTrackerFailure }

// Event is the announce event, numbered as in BEP 15.
type Event uint8

// Announce events.
const (
	EventNone      Event = 0
	EventCompleted Event = 1
	EventStarted   Event = 2
	EventStopped   Event = 3
)

func (e Event) String() string {
	switch e {
	case EventNone:
		return ""
	case EventCompleted:
		return "completed"
	case EventStarted:
		return "started"
	case EventStopped:
		return "stopped"
	}
	return fmt.Sprintf("event(%d)", uint8(e))
}

// Peer is one peer address reported by a tracker.
type Peer struct {
	Addr netip.AddrPort // IPv4 addresses are always unmapped (4-byte form)
	ID   string         // 20-byte peer id from the dictionary model; "" when not given
}

// AnnounceResponse is a decoded, successful announce reply.
type AnnounceResponse struct {
	Interval    time.Duration // 0 when the tracker gave none
	MinInterval time.Duration // 0 when the tracker gave none
	TrackerID   string        // HTTP "tracker id", to be sent back on later announces
	Warning     string        // HTTP "warning message"
	Seeders     int64         // -1 when unknown
	Leechers    int64         // -1 when unknown
	Peers       []Peer
}

// ScrapeStats are the counts for one torrent in a scrape reply; -1 when unknown.
type ScrapeStats struct {
	Seeders, Completed, Leechers int64
}

// AnnounceRequest holds the parameters of one announce.
type AnnounceRequest struct {
	InfoHash   [20]byte
	PeerID     [20]byte
	Downloaded int64
	Left       int64
	Uploaded   int64
	Event      Event
	Key        uint32
	NumWant    int32 // -1 lets the tracker choose
	Port       uint16
	TrackerID  string // HTTP only: the tracker id a previous reply gave
}

// MaxInterval caps intervals a tracker can ask for, so absurd values cannot
// overflow a time.Duration or park a pipeline for years.
const MaxInterval = 7 * 24 * time.Hour

func secondsToInterval(n int64) time.Duration {
	if n <= 0 {
		return 0
	}
	if n > int64(MaxInterval/time.Second) {
		return MaxInterval
	}
	return time.Duration(n) * time.Second
}

func count(n int64) int64 {
	if n < 0 {
		return -1
	}
	return n
}

// compactPeers decodes BEP 23 (6-byte) or BEP 7 (18-byte) entries.
func compactPeers(dst []Peer, b []byte, size int) ([]Peer, error) {
	if len(b)%size != 0 {
		return dst, fmt.Errorf("%w: compact peer list of %d bytes is not a multiple of %d", ErrMalformed, len(b), size)
	}
	for i := 0; i+size <= len(b); i += size {
		var a netip.Addr
		if size == 6 {
			a = netip.AddrFrom4([4]byte(b[i : i+4]))
		} else {
			a = netip.AddrFrom16([16]byte(b[i : i+16])).Unmap()
		}
		port := uint16(b[i+size-2])<<8 | uint16(b[i+size-1])
		dst = append(dst, Peer{Addr: netip.AddrPortFrom(a, port)})
	}
	return dst, nil
}

// appendCompact appends the compact form of p (6 bytes for IPv4, 18 for IPv6).
func appendCompact(b []byte, p netip.AddrPort) []byte {
	a := p.Addr()
	if a.Is4() {
		a4 := a.As4()
		b = append(b, a4[:]...)
	} else {
		a16 := a.As16()
		b = append(b, a16[:]...)
	}
	return append(b, byte(p.Port()>>8), byte(p.Port()))
}
