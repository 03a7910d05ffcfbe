package peerwire

import (
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"

	"flotilla/internal/bitfield"
)

// ErrNotIPv4 is returned by AllowedFastSet for addresses BEP 6 does not
// define a set for.
var ErrNotIPv4 = errors.New("peerwire: allowed-fast set is defined for IPv4 only")

// DefaultAllowedFast is the allowed-fast set size BEP 6 suggests.
const DefaultAllowedFast = 10

// AllowedFastSet computes the canonical BEP 6 allowed-fast set of k piece
// indexes for a peer at addr in a torrent of numPieces pieces, in generation
// order. k is capped at numPieces. IPv4-mapped IPv6 addresses are unmapped;
// other IPv6 addresses give ErrNotIPv4.
//
//	x = (ip & 0xffffff00) ++ infohash
//	while |a| < k: x = SHA1(x); for each of the five 4-byte words y of x:
//	    i = y mod numPieces; if i not in a: append i
func AllowedFastSet(addr netip.Addr, infoHash [20]byte, numPieces, k int) ([]uint32, error) {
	addr = addr.Unmap()
	if !addr.Is4() {
		return nil, ErrNotIPv4
	}
	if numPieces <= 0 || k <= 0 {
		return nil, nil
	}
	k = min(k, numPieces)
	ip := addr.As4()
	var x [24]byte
	copy(x[:3], ip[:3]) // last octet masked to zero
	copy(x[4:], infoHash[:])
	out := make([]uint32, 0, k)
	var seen bitfield.Bitfield // membership for large k; a linear scan otherwise
	if k > 64 {
		seen = bitfield.New(numPieces)
	}
	h := sha1.Sum(x[:])
	for {
		for j := 0; j < 20 && len(out) < k; j += 4 {
			i := binary.BigEndian.Uint32(h[j:]) % uint32(numPieces)
			if seen != nil {
				if !seen.Has(int(i)) {
					seen.Set(int(i))
					out = append(out, i)
				}
			} else if !slices.Contains(out, i) {
				out = append(out, i)
			}
		}
		if len(out) >= k {
			return out, nil
		}
		h = sha1.Sum(h[:])
	}
}
