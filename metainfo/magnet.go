package metainfo

import (
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Magnet is a parsed magnet URI (BEP 9).
type Magnet struct {
	InfoHash [20]byte
	Name     string   // dn, may be empty
	Trackers []string // tr, in order, duplicates and empty values dropped
	Peers    []string // x.pe, "host:port", in order, duplicates dropped
}

// ParseMagnet parses a magnet URI with an "xt=urn:btih:" info-hash in hex
// (40 characters) or base32 (32 characters). Other xt kinds (such as BEP 52
// urn:btmh) are ignored, but at least one btih must be present, and all
// btih values must agree. Unknown parameters are ignored.
func ParseMagnet(uri string) (*Magnet, error) {
	const scheme = "magnet:?"
	if len(uri) < len(scheme) || !strings.EqualFold(uri[:len(scheme)], scheme) {
		return nil, invalidf("magnet: URI does not start with %q", scheme)
	}
	q, err := url.ParseQuery(uri[len(scheme):])
	if err != nil {
		return nil, invalidf("magnet: bad query: %v", err)
	}
	m := &Magnet{}
	found := false
	for _, xt := range q["xt"] {
		const prefix = "urn:btih:"
		if len(xt) < len(prefix) || !strings.EqualFold(xt[:len(prefix)], prefix) {
			continue
		}
		h, err := parseBTIH(xt[len(prefix):])
		if err != nil {
			return nil, err
		}
		if found && h != m.InfoHash {
			return nil, invalidf("magnet: conflicting info-hashes %x and %x", m.InfoHash, h)
		}
		m.InfoHash, found = h, true
	}
	if !found {
		return nil, invalidf("magnet: no xt=urn:btih: info-hash")
	}
	if dn := q["dn"]; len(dn) > 0 {
		m.Name = dn[0]
	}
	seen := make(map[string]bool)
	for _, tr := range q["tr"] {
		if tr == "" || seen[tr] {
			continue
		}
		seen[tr] = true
		m.Trackers = append(m.Trackers, tr)
	}
	clear(seen)
	for _, pe := range q["x.pe"] {
		if err := validPeer(pe); err != nil {
			return nil, invalidf("magnet: x.pe %q: %v", pe, err)
		}
		if seen[pe] {
			continue
		}
		seen[pe] = true
		m.Peers = append(m.Peers, pe)
	}
	return m, nil
}

func parseBTIH(s string) (h [20]byte, err error) {
	switch len(s) {
	case 40:
		if _, err := hex.Decode(h[:], []byte(s)); err != nil {
			return h, invalidf("magnet: btih %q is not hex", s)
		}
	case 32:
		b, err := base32.StdEncoding.DecodeString(strings.ToUpper(s))
		if err != nil || len(b) != 20 {
			return h, invalidf("magnet: btih %q is not base32", s)
		}
		copy(h[:], b)
	default:
		return h, invalidf("magnet: btih %q has %d characters, want 40 (hex) or 32 (base32)", s, len(s))
	}
	return h, nil
}

// validPeer checks a "host:port" peer address with a numeric port 1..65535.
func validPeer(pe string) error {
	host, port, err := net.SplitHostPort(pe)
	if err != nil {
		return err
	}
	if host == "" {
		return errors.New("empty host")
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

// String encodes the magnet URI (info-hash in lower-case hex). ParseMagnet
// of the result yields an equal Magnet.
func (m *Magnet) String() string {
	var b strings.Builder
	b.WriteString("magnet:?xt=urn:btih:")
	b.WriteString(hex.EncodeToString(m.InfoHash[:]))
	if m.Name != "" {
		b.WriteString("&dn=")
		b.WriteString(url.QueryEscape(m.Name))
	}
	for _, tr := range m.Trackers {
		b.WriteString("&tr=")
		b.WriteString(url.QueryEscape(tr))
	}
	for _, pe := range m.Peers {
		b.WriteString("&x.pe=")
		b.WriteString(url.QueryEscape(pe))
	}
	return b.String()
}

// Magnet returns a magnet link for the torrent: its info-hash, name and the
// trackers of all tiers, in order.
func (t *Torrent) Magnet() *Magnet {
	m := &Magnet{InfoHash: t.InfoHash}
	if t.Info != nil {
		m.Name = t.Info.Name
	}
	for _, tier := range t.Tiers() {
		m.Trackers = append(m.Trackers, tier...)
	}
	return m
}
