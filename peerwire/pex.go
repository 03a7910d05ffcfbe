package peerwire

import (
	"net/netip"

	"flotilla/internal/bencode"
)

// BEP 11 (ut_pex): peer exchange over BEP 10 extended messages. The
// extended ID is the one the receiver gave for ExtPexName in its extension
// handshake. A message is a bencoded dictionary of compact peers:
// "added"/"added.f"/"dropped" for IPv4 (6 bytes each: address, port) and
// "added6"/"added6.f"/"dropped6" for IPv6 (18 bytes), with one flags byte
// per added peer.

// ExtPexName is the BEP 10 extension name of BEP 11.
const ExtPexName = "ut_pex"

// MaxPexPeers bounds the added and the dropped peers of one message (each,
// both address families together), as libtorrent and others do: a sender
// keeps within it, and a receiver reads only that many of each and ignores
// the rest rather than dropping the peer (libtorrent reads a bounded
// number of entries the same way; the 64 KiB cap on extended messages
// bounds the bytes).
const MaxPexPeers = 50

// PexFlags are a ut_pex added peer's flags ("added.f").
type PexFlags uint8

// The BEP 11 flags.
const (
	PexPrefersEncryption PexFlags = 0x01
	PexSeed              PexFlags = 0x02 // seed or upload-only
	PexUTP               PexFlags = 0x04 // supports uTP
	PexHolepunch         PexFlags = 0x08 // supports ut_holepunch
	PexReachable         PexFlags = 0x10 // outgoing connection: the peer is reachable
)

// PexPeer is one added peer.
type PexPeer struct {
	Addr  netip.AddrPort
	Flags PexFlags
}

// PexMsg is one ut_pex message.
type PexMsg struct {
	Added   []PexPeer
	Dropped []netip.AddrPort
}

// ErrBadPexMsg: a ut_pex message that is not one well-formed bencoded
// dictionary within the bencode limits.
var ErrBadPexMsg error = &protoErr{"peerwire: bad ut_pex message"}

// AppendTo appends m's payload (the bytes after the extended ID) to dst:
// the canonical bencoding, IPv4 peers under "added"/"dropped" and IPv6
// ones under "added6"/"dropped6". Only the first MaxPexPeers added and
// dropped peers are written; invalid addresses are skipped.
func (m PexMsg) AppendTo(dst []byte) []byte {
	var a4, a6, f4, f6, d4, d6 []byte
	for i, p := range m.Added {
		if i == MaxPexPeers {
			break
		}
		a := p.Addr.Addr().Unmap()
		switch {
		case !p.Addr.IsValid():
		case a.Is4():
			a4 = appendCompact(a4, a, p.Addr.Port())
			f4 = append(f4, byte(p.Flags))
		default:
			a6 = appendCompact(a6, a, p.Addr.Port())
			f6 = append(f6, byte(p.Flags))
		}
	}
	for i, ap := range m.Dropped {
		if i == MaxPexPeers {
			break
		}
		a := ap.Addr().Unmap()
		switch {
		case !ap.IsValid():
		case a.Is4():
			d4 = appendCompact(d4, a, ap.Port())
		default:
			d6 = appendCompact(d6, a, ap.Port())
		}
	}
	// Keys in sorted order; every key is written (empty strings are
	// what other clients send for an empty list).
	dst = append(dst, 'd')
	for _, kv := range [...]struct {
		k string
		v []byte
	}{{"added", a4}, {"added.f", f4}, {"added6", a6}, {"added6.f", f6}, {"dropped", d4}, {"dropped6", d6}} {
		dst = appendString(dst, kv.k)
		dst = appendString(dst, string(kv.v))
	}
	return append(dst, 'e')
}

func appendCompact(dst []byte, a netip.Addr, port uint16) []byte {
	dst = append(dst, a.AsSlice()...)
	return append(dst, byte(port>>8), byte(port))
}

// ParsePexMsg decodes a ut_pex payload with the strict bencode reader: it
// must be exactly one dictionary (any bencode error, trailing bytes,
// nesting over 32 levels or a string over 64 KiB give ErrBadPexMsg). Keys
// may come in any order; unknown keys and known keys of another type are
// skipped. Of each list at most MaxPexPeers entries are kept (IPv4 before
// IPv6) and the rest ignored; a partial trailing entry, port 0 and
// unspecified addresses are skipped; a missing flag byte is 0. IPv4-mapped
// IPv6 addresses are unmapped.
func ParsePexMsg(b []byte) (PexMsg, error) {
	var raw [6][]byte // added, added.f, added6, added6.f, dropped, dropped6
	keys := [...]string{"added", "added.f", "added6", "added6.f", "dropped", "dropped6"}
	d := bencode.NewDecoder(b, bencode.Options{
		MaxDepth:     maxBencodeDepth,
		MaxStringLen: maxExtString,
		Kind:         ErrBadPexMsg,
		Duplicate:    bencode.KeepFirst,
	})
	err := d.Dict(func(key []byte) error {
		for i, k := range keys {
			if string(key) == k {
				return optString(d, func(s []byte) { raw[i] = s })
			}
		}
		return nil
	})
	if err == nil {
		err = d.Finish()
	}
	if err != nil {
		return PexMsg{}, err
	}
	var m PexMsg
	addAdded := func(list, flags []byte, size int) {
		for i := 0; i+size <= len(list) && len(m.Added) < MaxPexPeers; i += size {
			ap, ok := parseCompact(list[i : i+size])
			if !ok {
				continue
			}
			var f PexFlags
			if j := i / size; j < len(flags) {
				f = PexFlags(flags[j])
			}
			m.Added = append(m.Added, PexPeer{Addr: ap, Flags: f})
		}
	}
	addAdded(raw[0], raw[1], 6)
	addAdded(raw[2], raw[3], 18)
	for _, dl := range [...]struct {
		list []byte
		size int
	}{{raw[4], 6}, {raw[5], 18}} {
		for i := 0; i+dl.size <= len(dl.list) && len(m.Dropped) < MaxPexPeers; i += dl.size {
			if ap, ok := parseCompact(dl.list[i : i+dl.size]); ok {
				m.Dropped = append(m.Dropped, ap)
			}
		}
	}
	return m, nil
}

// parseCompact reads a 6- or 18-byte compact peer; false for port 0 or an
// unspecified address.
func parseCompact(b []byte) (netip.AddrPort, bool) {
	n := len(b) - 2
	a, ok := netip.AddrFromSlice(b[:n])
	port := uint16(b[n])<<8 | uint16(b[n+1])
	if !ok || port == 0 || a.IsUnspecified() {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a.Unmap(), port), true
}
