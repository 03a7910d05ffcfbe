package peerswarm

import (
	"net/netip"
)

// trustBook is the hash-failure accounting of one swarm. Every peer that
// contributed to a piece failing its hash gets a strike: its first strike
// makes it distrusted (the picker then gives it only pieces no other peer
// is downloading, so that a further failure is its alone), and reaching
// MaxStrikes (2 by default: a repeat) bans it by IP address. A distrusted
// peer gets a further strike only from a piece it alone contributed to:
// pieces shared with others may have been started before the distrust
// (several are in flight at once), and a liar's blocks in them would
// otherwise ban the honest peers that shared them. A strike is taken back
// when the piece later verifies and blame shows the peer's blocks were
// right (the guilty keep theirs). Protocol abuse bans at once (Ban). Passive; owned by the swarm's guard (guard.go), which
// publishes the ban list and the distrusted set to other goroutines.
type trustBook struct {
	MaxStrikes int
	strikes    map[netip.Addr]int
	banned     map[netip.Addr]struct{}
}

func newTrustBook(maxStrikes int) *trustBook {
	return &trustBook{MaxStrikes: maxStrikes, strikes: map[netip.Addr]int{}, banned: map[netip.Addr]struct{}{}}
}

// HashFailed gives a strike to each of the distinct addresses that
// contributed to a failed piece, except, when there are several, to those
// already distrusted. It appends to distrusted those that have just become
// distrusted and to banned those that have just reached MaxStrikes.
func (t *trustBook) HashFailed(contributors, distrusted, banned []netip.Addr) ([]netip.Addr, []netip.Addr) {
	for _, a := range contributors {
		if _, ok := t.banned[a]; ok || len(contributors) > 1 && t.strikes[a] > 0 {
			continue
		}
		t.strikes[a]++
		switch {
		case t.strikes[a] >= t.MaxStrikes:
			t.banned[a] = struct{}{}
			banned = append(banned, a)
		case t.strikes[a] == 1:
			distrusted = append(distrusted, a)
		}
	}
	return distrusted, banned
}

// Absolve takes back one strike from a, whose blocks of a failed piece
// proved right, and reports whether a is trusted again.
func (t *trustBook) Absolve(a netip.Addr) bool {
	if _, ok := t.banned[a]; ok || t.strikes[a] == 0 {
		return false
	}
	t.strikes[a]--
	if t.strikes[a] > 0 {
		return false
	}
	delete(t.strikes, a)
	return true
}

// Distrusted reports whether a has a strike and is not banned.
func (t *trustBook) Distrusted(a netip.Addr) bool {
	a = a.Unmap()
	_, banned := t.banned[a]
	return t.strikes[a] > 0 && !banned
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
