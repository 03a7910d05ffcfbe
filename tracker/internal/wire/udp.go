package wire

import (
	"encoding/binary"
	"fmt"
	"time"
)

// BEP 15 constants.
const (
	ProtocolID     uint64 = 0x41727101980
	ActionConnect  uint32 = 0
	ActionAnnounce uint32 = 1
	ActionScrape   uint32 = 2
	ActionError    uint32 = 3

	ConnectSize         = 16 // connect request and reply
	AnnounceRequestSize = 98 // without BEP 41 options
	AnnounceReplyMin    = 20 // header before the peers
	ScrapeReplyEntry    = 12
	MaxScrapeHashes     = 74 // BEP 15: at most 74 info-hashes per scrape
	ErrorReplyMin       = 8

	optEnd     = 0
	optNOP     = 1
	optURLData = 2
)

var be = binary.BigEndian

// ReplyHeader returns the action and transaction id of a reply; ok is false
// when the datagram is shorter than any valid reply header.
func ReplyHeader(b []byte) (action, txid uint32, ok bool) {
	if len(b) < 8 {
		return 0, 0, false
	}
	return be.Uint32(b), be.Uint32(b[4:]), true
}

// AppendConnectRequest appends a connect request.
func AppendConnectRequest(dst []byte, txid uint32) []byte {
	dst = be.AppendUint64(dst, ProtocolID)
	dst = be.AppendUint32(dst, ActionConnect)
	return be.AppendUint32(dst, txid)
}

// AppendAnnounceRequest appends an announce request; urlData (path and query
// of the tracker URL) is sent as BEP 41 options when non-empty.
func AppendAnnounceRequest(dst []byte, connID uint64, txid uint32, r *AnnounceRequest, urlData string) []byte {
	dst = be.AppendUint64(dst, connID)
	dst = be.AppendUint32(dst, ActionAnnounce)
	dst = be.AppendUint32(dst, txid)
	dst = append(dst, r.InfoHash[:]...)
	dst = append(dst, r.PeerID[:]...)
	dst = be.AppendUint64(dst, uint64(r.Downloaded))
	dst = be.AppendUint64(dst, uint64(r.Left))
	dst = be.AppendUint64(dst, uint64(r.Uploaded))
	dst = be.AppendUint32(dst, uint32(r.Event))
	dst = be.AppendUint32(dst, 0) // IP: the sender's address
	dst = be.AppendUint32(dst, r.Key)
	dst = be.AppendUint32(dst, uint32(r.NumWant))
	dst = be.AppendUint16(dst, r.Port)
	if urlData != "" {
		for len(urlData) > 0 {
			n := min(len(urlData), 255)
			dst = append(dst, optURLData, byte(n))
			dst = append(dst, urlData[:n]...)
			urlData = urlData[n:]
		}
		dst = append(dst, optEnd)
	}
	return dst
}

// AppendScrapeRequest appends a scrape request for up to MaxScrapeHashes hashes.
func AppendScrapeRequest(dst []byte, connID uint64, txid uint32, hashes [][20]byte) []byte {
	dst = be.AppendUint64(dst, connID)
	dst = be.AppendUint32(dst, ActionScrape)
	dst = be.AppendUint32(dst, txid)
	for _, h := range hashes[:min(len(hashes), MaxScrapeHashes)] {
		dst = append(dst, h[:]...)
	}
	return dst
}

// DecodeConnectReply returns the connection id of a connect reply.
func DecodeConnectReply(b []byte) (uint64, error) {
	if len(b) < ConnectSize {
		return 0, fmt.Errorf("%w: connect reply of %d bytes (want %d)", ErrMalformed, len(b), ConnectSize)
	}
	if a := be.Uint32(b); a != ActionConnect {
		return 0, fmt.Errorf("%w: connect reply with action %d", ErrMalformed, a)
	}
	return be.Uint64(b[8:]), nil
}

// DecodeAnnounceReply decodes an announce reply. v6 selects 18-byte peer
// entries (the tracker was reached over IPv6) instead of 6-byte ones.
func DecodeAnnounceReply(b []byte, v6 bool) (*AnnounceResponse, error) {
	if len(b) < AnnounceReplyMin {
		// opentracker answers an info-hash missing from its whitelist with
		// a bare 8-byte header; say what that usually means.
		return nil, fmt.Errorf("%w: announce reply of %d bytes (want at least %d; a truncated reply is how some trackers refuse a torrent they do not track)", ErrMalformed, len(b), AnnounceReplyMin)
	}
	if a := be.Uint32(b); a != ActionAnnounce {
		return nil, fmt.Errorf("%w: announce reply with action %d", ErrMalformed, a)
	}
	r := &AnnounceResponse{
		Interval: secondsToInterval(int64(be.Uint32(b[8:]))),
		Leechers: int64(be.Uint32(b[12:])),
		Seeders:  int64(be.Uint32(b[16:])),
	}
	size := 6
	if v6 {
		size = 18
	}
	var err error
	if r.Peers, err = compactPeers(nil, b[20:], size); err != nil {
		return nil, err
	}
	return r, nil
}

// DecodeScrapeReply decodes a scrape reply holding want entries; a reply
// with fewer complete entries than asked is malformed, extra bytes are too.
func DecodeScrapeReply(b []byte, want int) ([]ScrapeStats, error) {
	if len(b) < 8 || be.Uint32(b) != ActionScrape {
		return nil, fmt.Errorf("%w: not a scrape reply", ErrMalformed)
	}
	body := b[8:]
	if len(body)%ScrapeReplyEntry != 0 || len(body)/ScrapeReplyEntry != want {
		return nil, fmt.Errorf("%w: scrape reply of %d bytes for %d info-hashes", ErrMalformed, len(b), want)
	}
	out := make([]ScrapeStats, want)
	for i := range out {
		e := body[i*ScrapeReplyEntry:]
		out[i] = ScrapeStats{
			Seeders:   int64(be.Uint32(e)),
			Completed: int64(be.Uint32(e[4:])),
			Leechers:  int64(be.Uint32(e[8:])),
		}
	}
	return out, nil
}

// DecodeErrorReply returns the tracker error carried by an error reply.
func DecodeErrorReply(b []byte) error {
	if len(b) < ErrorReplyMin || be.Uint32(b) != ActionError {
		return fmt.Errorf("%w: not an error reply", ErrMalformed)
	}
	return &TrackerError{Reason: string(b[8:])}
}

// Request is a decoded client request, as a tracker sees it.
type Request struct {
	ConnID   uint64 // the protocol id for a connect
	Action   uint32
	TxID     uint32
	Announce AnnounceRequest // for ActionAnnounce
	URLData  string          // BEP 41 URLData options concatenated
	Hashes   [][20]byte      // for ActionScrape
}

// ParseRequest decodes a client request (the tracker side of the Append*Request functions).
func ParseRequest(b []byte) (Request, error) {
	var q Request
	if len(b) < 16 {
		return q, fmt.Errorf("%w: request of %d bytes", ErrMalformed, len(b))
	}
	q.ConnID, q.Action, q.TxID = be.Uint64(b), be.Uint32(b[8:]), be.Uint32(b[12:])
	switch q.Action {
	case ActionConnect:
		if q.ConnID != ProtocolID {
			return q, fmt.Errorf("%w: connect without the protocol id", ErrMalformed)
		}
	case ActionAnnounce:
		if len(b) < AnnounceRequestSize {
			return q, fmt.Errorf("%w: announce request of %d bytes", ErrMalformed, len(b))
		}
		a := &q.Announce
		a.InfoHash = [20]byte(b[16:36])
		a.PeerID = [20]byte(b[36:56])
		a.Downloaded = int64(be.Uint64(b[56:]))
		a.Left = int64(be.Uint64(b[64:]))
		a.Uploaded = int64(be.Uint64(b[72:]))
		a.Event = Event(be.Uint32(b[80:]))
		a.Key = be.Uint32(b[88:])
		a.NumWant = int32(be.Uint32(b[92:]))
		a.Port = be.Uint16(b[96:])
		opts := b[AnnounceRequestSize:]
		var urlData []byte
		for len(opts) > 0 && opts[0] != optEnd {
			if opts[0] == optNOP {
				opts = opts[1:]
				continue
			}
			if len(opts) < 2 || len(opts) < 2+int(opts[1]) {
				return q, fmt.Errorf("%w: truncated announce option", ErrMalformed)
			}
			if opts[0] == optURLData {
				urlData = append(urlData, opts[2:2+int(opts[1])]...)
			}
			opts = opts[2+int(opts[1]):]
		}
		q.URLData = string(urlData)
	case ActionScrape:
		body := b[16:]
		if len(body)%20 != 0 || len(body) == 0 || len(body)/20 > MaxScrapeHashes {
			return q, fmt.Errorf("%w: scrape request of %d bytes", ErrMalformed, len(b))
		}
		for i := 0; i < len(body); i += 20 {
			q.Hashes = append(q.Hashes, [20]byte(body[i:i+20]))
		}
	default:
		return q, fmt.Errorf("%w: unknown action %d", ErrMalformed, q.Action)
	}
	return q, nil
}

// AppendConnectReply appends a connect reply.
func AppendConnectReply(dst []byte, txid uint32, connID uint64) []byte {
	dst = be.AppendUint32(dst, ActionConnect)
	dst = be.AppendUint32(dst, txid)
	return be.AppendUint64(dst, connID)
}

// AppendAnnounceReply appends an announce reply. With v6 every peer is an
// 18-byte entry (IPv4 ones mapped); without, IPv6 peers are left out.
func AppendAnnounceReply(dst []byte, txid uint32, r *AnnounceResponse, v6 bool) []byte {
	dst = be.AppendUint32(dst, ActionAnnounce)
	dst = be.AppendUint32(dst, txid)
	dst = be.AppendUint32(dst, uint32(r.Interval/time.Second))
	dst = be.AppendUint32(dst, uint32(max(r.Leechers, 0)))
	dst = be.AppendUint32(dst, uint32(max(r.Seeders, 0)))
	for _, p := range r.Peers {
		switch {
		case v6:
			a16 := p.Addr.Addr().As16()
			dst = append(dst, a16[:]...)
			dst = append(dst, byte(p.Addr.Port()>>8), byte(p.Addr.Port()))
		case p.Addr.Addr().Is4():
			dst = appendCompact(dst, p.Addr)
		}
	}
	return dst
}

// AppendScrapeReply appends a scrape reply.
func AppendScrapeReply(dst []byte, txid uint32, stats []ScrapeStats) []byte {
	dst = be.AppendUint32(dst, ActionScrape)
	dst = be.AppendUint32(dst, txid)
	for _, s := range stats {
		dst = be.AppendUint32(dst, uint32(max(s.Seeders, 0)))
		dst = be.AppendUint32(dst, uint32(max(s.Completed, 0)))
		dst = be.AppendUint32(dst, uint32(max(s.Leechers, 0)))
	}
	return dst
}

// AppendErrorReply appends an error reply.
func AppendErrorReply(dst []byte, txid uint32, msg string) []byte {
	dst = be.AppendUint32(dst, ActionError)
	dst = be.AppendUint32(dst, txid)
	return append(dst, msg...)
}
