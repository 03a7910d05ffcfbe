package wire

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"flotilla/internal/bencode"
)

// ErrScrapeUnsupported: the announce URL does not follow the scrape convention
// (its last path component does not start with "announce").
var ErrScrapeUnsupported = errors.New("tracker does not support scrape")

// EscapeBinary percent-encodes every byte that is not unreserved
// (A-Z a-z 0-9 - . _ ~), as trackers expect for info_hash and peer_id.
func EscapeBinary(dst []byte, b []byte) []byte {
	const hexdig = "0123456789ABCDEF"
	for _, c := range b {
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', hexdig[c>>4], hexdig[c&15])
	}
	return dst
}

// withQuery returns base (fragment removed) followed by the separator that
// starts or continues its query string.
func withQuery(base string) ([]byte, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("tracker url %q: %w", base, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("tracker url %q: scheme %q is not http(s)", base, u.Scheme)
	}
	if i := strings.IndexByte(base, '#'); i >= 0 {
		base = base[:i]
	}
	b := make([]byte, 0, len(base)+256)
	b = append(b, base...)
	switch {
	case !strings.Contains(base, "?"):
		b = append(b, '?')
	case strings.HasSuffix(base, "?") || strings.HasSuffix(base, "&"):
	default:
		b = append(b, '&')
	}
	return b, nil
}

// AnnounceURL builds the HTTP announce URL for r on top of base, which may
// already carry a query string (e.g. a passkey).
func AnnounceURL(base string, r *AnnounceRequest) (string, error) {
	b, err := withQuery(base)
	if err != nil {
		return "", err
	}
	b = append(b, "info_hash="...)
	b = EscapeBinary(b, r.InfoHash[:])
	b = append(b, "&peer_id="...)
	b = EscapeBinary(b, r.PeerID[:])
	b = append(b, "&port="...)
	b = strconv.AppendUint(b, uint64(r.Port), 10)
	b = append(b, "&uploaded="...)
	b = strconv.AppendInt(b, max(r.Uploaded, 0), 10)
	b = append(b, "&downloaded="...)
	b = strconv.AppendInt(b, max(r.Downloaded, 0), 10)
	b = append(b, "&left="...)
	b = strconv.AppendInt(b, max(r.Left, 0), 10)
	b = append(b, "&compact=1"...)
	if r.Event != EventNone {
		b = append(b, "&event="...)
		b = append(b, r.Event.String()...)
	}
	if r.NumWant >= 0 {
		b = append(b, "&numwant="...)
		b = strconv.AppendInt(b, int64(r.NumWant), 10)
	}
	b = append(b, "&key="...)
	b = fmt.Appendf(b, "%08X", r.Key)
	if r.TrackerID != "" {
		b = append(b, "&trackerid="...)
		b = EscapeBinary(b, []byte(r.TrackerID))
	}
	return string(b), nil
}

// ScrapeURL derives the scrape URL from an HTTP announce URL by the BEP 48
// convention: the last path component must start with "announce", which is
// replaced by "scrape"; otherwise the tracker does not support scrape.
func ScrapeURL(announce string) (string, error) {
	u, err := url.Parse(announce)
	if err != nil {
		return "", fmt.Errorf("tracker url %q: %w", announce, err)
	}
	i := strings.LastIndexByte(u.Path, '/')
	if i < 0 || !strings.HasPrefix(u.Path[i+1:], "announce") {
		return "", fmt.Errorf("%w: %q", ErrScrapeUnsupported, announce)
	}
	u.Path = u.Path[:i+1] + "scrape" + strings.TrimPrefix(u.Path[i+1:], "announce")
	u.RawPath = ""
	u.Fragment = ""
	return u.String(), nil
}

// ScrapeQueryURL appends one info_hash parameter per hash to a scrape URL.
func ScrapeQueryURL(scrape string, hashes [][20]byte) (string, error) {
	b, err := withQuery(scrape)
	if err != nil {
		return "", err
	}
	for i, h := range hashes {
		if i > 0 {
			b = append(b, '&')
		}
		b = append(b, "info_hash="...)
		b = EscapeBinary(b, h[:])
	}
	return string(b), nil
}

func topDict(b []byte) (map[string]bencode.Value, error) {
	v, err := decodeBencode(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if v.Kind != bencode.KindDict {
		return nil, fmt.Errorf("%w: reply is not a dictionary", ErrMalformed)
	}
	if f, ok := v.Dict["failure reason"]; ok {
		if f.Kind != bencode.KindString {
			return nil, fmt.Errorf("%w: failure reason is not a string", ErrMalformed)
		}
		return nil, &TrackerError{Reason: string(f.Str)}
	}
	return v.Dict, nil
}

func getInt(d map[string]bencode.Value, key string, def int64) (int64, error) {
	v, ok := d[key]
	if !ok {
		return def, nil
	}
	if v.Kind != bencode.KindInt {
		return 0, fmt.Errorf("%w: %q is not an integer", ErrMalformed, key)
	}
	return v.Int, nil
}

func getStr(d map[string]bencode.Value, key string) (string, error) {
	v, ok := d[key]
	if !ok {
		return "", nil
	}
	if v.Kind != bencode.KindString {
		return "", fmt.Errorf("%w: %q is not a string", ErrMalformed, key)
	}
	return string(v.Str), nil
}

// DecodeHTTPAnnounce decodes a bencoded announce reply. A "failure reason"
// yields a *TrackerError. Peers may come compact (BEP 23), as a list of
// dictionaries (BEP 3; entries with a host name or bad port are skipped) and
// in "peers6" (BEP 7).
func DecodeHTTPAnnounce(b []byte) (*AnnounceResponse, error) {
	d, err := topDict(b)
	if err != nil {
		return nil, err
	}
	r := &AnnounceResponse{}
	var n int64
	if n, err = getInt(d, "interval", 0); err != nil {
		return nil, err
	}
	r.Interval = secondsToInterval(n)
	if n, err = getInt(d, "min interval", 0); err != nil {
		return nil, err
	}
	r.MinInterval = secondsToInterval(n)
	if n, err = getInt(d, "complete", -1); err != nil {
		return nil, err
	}
	r.Seeders = count(n)
	if n, err = getInt(d, "incomplete", -1); err != nil {
		return nil, err
	}
	r.Leechers = count(n)
	if r.TrackerID, err = getStr(d, "tracker id"); err != nil {
		return nil, err
	}
	if r.Warning, err = getStr(d, "warning message"); err != nil {
		return nil, err
	}
	if p, ok := d["peers"]; ok {
		switch p.Kind {
		case bencode.KindString:
			if r.Peers, err = compactPeers(r.Peers, p.Str, 6); err != nil {
				return nil, err
			}
		case bencode.KindList:
			for _, e := range p.List {
				if peer, ok := dictPeer(e); ok {
					r.Peers = append(r.Peers, peer)
				}
			}
		default:
			return nil, fmt.Errorf("%w: peers is neither a string nor a list", ErrMalformed)
		}
	}
	if p, ok := d["peers6"]; ok {
		if p.Kind != bencode.KindString {
			return nil, fmt.Errorf("%w: peers6 is not a string", ErrMalformed)
		}
		if r.Peers, err = compactPeers(r.Peers, p.Str, 18); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func dictPeer(e bencode.Value) (Peer, bool) {
	if e.Kind != bencode.KindDict {
		return Peer{}, false
	}
	ip, ok := e.Dict["ip"]
	if !ok || ip.Kind != bencode.KindString {
		return Peer{}, false
	}
	a, err := netip.ParseAddr(string(ip.Str))
	if err != nil || a.Zone() != "" {
		return Peer{}, false // host names are not resolved here
	}
	port, ok := e.Dict["port"]
	if !ok || port.Kind != bencode.KindInt || port.Int < 0 || port.Int > 65535 {
		return Peer{}, false
	}
	p := Peer{Addr: netip.AddrPortFrom(a.Unmap(), uint16(port.Int))}
	if id, ok := e.Dict["peer id"]; ok && id.Kind == bencode.KindString && len(id.Str) == 20 {
		p.ID = string(id.Str)
	}
	return p, true
}

// DecodeHTTPScrape decodes a bencoded scrape reply: the "files" dictionary
// keyed by 20-byte info-hash. Entries with other key lengths are skipped.
func DecodeHTTPScrape(b []byte) (map[[20]byte]ScrapeStats, error) {
	d, err := topDict(b)
	if err != nil {
		return nil, err
	}
	files, ok := d["files"]
	if !ok {
		return map[[20]byte]ScrapeStats{}, nil
	}
	if files.Kind != bencode.KindDict {
		return nil, fmt.Errorf("%w: files is not a dictionary", ErrMalformed)
	}
	out := make(map[[20]byte]ScrapeStats, len(files.Dict))
	for k, v := range files.Dict {
		if len(k) != 20 || v.Kind != bencode.KindDict {
			continue
		}
		var s ScrapeStats
		var n int64
		if n, err = getInt(v.Dict, "complete", -1); err != nil {
			return nil, err
		}
		s.Seeders = count(n)
		if n, err = getInt(v.Dict, "downloaded", -1); err != nil {
			return nil, err
		}
		s.Completed = count(n)
		if n, err = getInt(v.Dict, "incomplete", -1); err != nil {
			return nil, err
		}
		s.Leechers = count(n)
		out[[20]byte([]byte(k))] = s
	}
	return out, nil
}

// EncodeHTTPAnnounce is the tracker side of DecodeHTTPAnnounce. Peers
// without ids go compact ("peers" for IPv4, "peers6" for IPv6); if any peer
// has an id, or an IPv6 peer precedes an IPv4 one, all go in the dictionary
// model so that decoding gives back the same list.
func EncodeHTTPAnnounce(r *AnnounceResponse) []byte {
	e := encoder{}
	entries := map[string]func(){}
	if r.Interval > 0 {
		entries["interval"] = func() { e.int(int64(r.Interval / time.Second)) }
	}
	if r.MinInterval > 0 {
		entries["min interval"] = func() { e.int(int64(r.MinInterval / time.Second)) }
	}
	if r.Seeders >= 0 {
		entries["complete"] = func() { e.int(r.Seeders) }
	}
	if r.Leechers >= 0 {
		entries["incomplete"] = func() { e.int(r.Leechers) }
	}
	if r.TrackerID != "" {
		entries["tracker id"] = func() { e.str(r.TrackerID) }
	}
	if r.Warning != "" {
		entries["warning message"] = func() { e.str(r.Warning) }
	}
	dictModel, seen6 := false, false
	for _, p := range r.Peers {
		is4 := p.Addr.Addr().Is4()
		if p.ID != "" || (is4 && seen6) {
			dictModel = true
		}
		seen6 = seen6 || !is4
	}
	if dictModel {
		entries["peers"] = func() {
			e.b = append(e.b, 'l')
			for _, p := range r.Peers {
				pe := map[string]func(){
					"ip":   func() { e.str(p.Addr.Addr().String()) },
					"port": func() { e.int(int64(p.Addr.Port())) },
				}
				if p.ID != "" {
					pe["peer id"] = func() { e.str(p.ID) }
				}
				e.dict(pe)
			}
			e.b = append(e.b, 'e')
		}
	} else {
		var v4, v6 []byte
		for _, p := range r.Peers {
			if p.Addr.Addr().Is4() {
				v4 = appendCompact(v4, p.Addr)
			} else {
				v6 = appendCompact(v6, p.Addr)
			}
		}
		entries["peers"] = func() { e.str(string(v4)) }
		if len(v6) > 0 {
			entries["peers6"] = func() { e.str(string(v6)) }
		}
	}
	e.dict(entries)
	return e.b
}

// EncodeHTTPFailure encodes a reply carrying only a failure reason.
func EncodeHTTPFailure(reason string) []byte {
	e := encoder{}
	e.dict(map[string]func(){"failure reason": func() { e.str(reason) }})
	return e.b
}

// EncodeHTTPScrape is the tracker side of DecodeHTTPScrape.
func EncodeHTTPScrape(files map[[20]byte]ScrapeStats) []byte {
	e := encoder{}
	fe := map[string]func(){}
	for h, s := range files {
		fe[string(h[:])] = func() {
			m := map[string]func(){}
			if s.Seeders >= 0 {
				m["complete"] = func() { e.int(s.Seeders) }
			}
			if s.Completed >= 0 {
				m["downloaded"] = func() { e.int(s.Completed) }
			}
			if s.Leechers >= 0 {
				m["incomplete"] = func() { e.int(s.Leechers) }
			}
			e.dict(m)
		}
	}
	e.dict(map[string]func(){"files": func() { e.dict(fe) }})
	return e.b
}
