package swarm

import (
	"net/netip"
)

// trustBook is the hash-failure accounting of one swarm: a peer that
// contributed to a piece failing its hash gets a strike; the sole
// contributor of a bad piece, or a peer reaching MaxStrikes, is banned by
// IP address. Passive; owned by the swarm's goroutine (the ban list itself
// is published to connection code through the swarm's snapshot).
type trustBook struct {
	MaxStrikes int
	strikes    map[netip.Addr]int
	banned     map[netip.Addr]struct{}
}

func newTrustBook(maxStrikes int) *trustBook {
	return &trustBook{MaxStrikes: maxStrikes, strikes: map[netip.Addr]int{}, banned: map[netip.Addr]struct{}{}}
}

// HashFailed records a failed piece delivered by the given distinct
// addresses and appends the newly banned ones to dst.
func (t *trustBook) HashFailed(contributors []netip.Addr, dst []netip.Addr) []netip.Addr {
	sole := len(contributors) == 1
	for _, a := range contributors {
		if _, ok := t.banned[a]; ok {
			continue
		}
		t.strikes[a]++
		if sole || t.strikes[a] >= t.MaxStrikes {
			t.banned[a] = struct{}{}
			dst = append(dst, a)
		}
	}
	return dst
}

// Ban bans an address outright (protocol abuse).
func (t *trustBook) Ban(a netip.Addr) { t.banned[a] = struct{}{} }

// Banned reports whether a is banned.
func (t *trustBook) Banned(a netip.Addr) bool {
	_, ok := t.banned[a.Unmap()]
	if !ok {
		_, ok = t.banned[a]
	}
	return ok
}

// Strikes reports a's hash-failure count.
func (t *trustBook) Strikes(a netip.Addr) int { return t.strikes[a] }

// Len is the number of banned addresses.
func (t *trustBook) Len() int { return len(t.banned) }

// blame compares the data of a piece that failed its hash (bad) with the
// same piece once verified (good), block by block, and returns the
// distinct addresses that delivered a differing block. from[b] is the
// source of block b of bad (invalid if unknown).
func blame(bad, good []byte, from []netip.Addr, blockSize int, dst []netip.Addr) []netip.Addr {
	for b := 0; b < len(from); b++ {
		lo, hi := b*blockSize, min((b+1)*blockSize, len(bad), len(good))
		if lo >= hi || !from[b].IsValid() || string(bad[lo:hi]) == string(good[lo:hi]) {
			continue
		}
		dup := false
		for _, a := range dst {
			dup = dup || a == from[b]
		}
		if !dup {
			dst = append(dst, from[b])
		}
	}
	return dst
}
