package peerswarm

import "flotilla/internal/bitfield"

// availability counts, for each piece, the connected peers that announced
// it; peers with every piece (have-all) are counted once for all. It is
// passive: the owner feeds it as peers announce pieces and leave, and the
// Picker reads it to pick the rarest piece.
type availability struct {
	count []int32 // peers announcing the piece (besides have-all peers)
	seeds int32   // peers with have-all
}

func newAvailability(n int) availability { return availability{count: make([]int32, n)} }

// Of returns how many connected peers have piece i.
func (a *availability) Of(i int) int { return int(a.count[i] + a.seeds) }

// Have records that a peer announced piece i.
func (a *availability) Have(i int) {
	if i >= 0 && i < len(a.count) {
		a.count[i]++
	}
}

// Bitfield adds a peer's bitfield (BEP 3 bit order).
func (a *availability) Bitfield(bf bitfield.Bitfield) {
	for i := range a.count {
		if bf.Has(i) {
			a.count[i]++
		}
	}
}

// HaveAll records a peer that has every piece.
func (a *availability) HaveAll() { a.seeds++ }

// Gone removes a departed peer's pieces (its bitfield, or have-all).
func (a *availability) Gone(bf bitfield.Bitfield, haveAll bool) {
	if haveAll {
		a.seeds--
		return
	}
	if bf == nil {
		return
	}
	for i := range a.count {
		if bf.Has(i) && a.count[i] > 0 {
			a.count[i]--
		}
	}
}
