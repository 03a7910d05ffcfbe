package peerswarm

import (
	"math/rand/v2"
	"slices"
	"time"
)

// chokeCandidate is one connected peer as the choker sees it.
type chokeCandidate struct {
	Key        peerKey
	Interested bool    // the peer wants something we have
	Rate       float64 // leeching: bytes/s we receive from it; seeding: bytes/s we send it
	Snubbed    bool    // it has not sent us a requested block for a long time
}

// choker decides which peers get upload slots: while downloading, the
// peers that give us the most (tit-for-tat) plus one optimistic unchoke
// rotated every OptimisticEvery; while seeding, interested peers take
// turns (round-robin). Passive: its owner calls Decide on a timer.
type choker struct {
	Slots           int
	OptimisticEvery time.Duration

	rng        *rand.Rand
	optimistic peerKey
	optSince   time.Time
	rr         int
}

func newChoker(slots int, every time.Duration, seed uint64) *choker {
	return &choker{Slots: slots, OptimisticEvery: every, optimistic: noPeer,
		rng: rand.New(rand.NewPCG(seed, 77))}
}

// Decide returns (appended to dst) the peers to unchoke; all others are
// choked.
func (c *choker) Decide(now time.Time, seeding bool, cands []chokeCandidate, dst []peerKey) []peerKey {
	var want []chokeCandidate
	for _, x := range cands {
		if x.Interested {
			want = append(want, x)
		}
	}
	if len(want) == 0 || c.Slots <= 0 {
		return dst
	}
	if seeding {
		slices.SortFunc(want, func(a, b chokeCandidate) int { return int(a.Key - b.Key) })
		n := min(c.Slots, len(want))
		start := c.rr % len(want)
		for i := range n {
			dst = append(dst, want[(start+i)%len(want)].Key)
		}
		c.rr = start + n
		return dst
	}
	// Downloading: fastest non-snubbed peers, Slots-1 of them.
	slices.SortFunc(want, func(a, b chokeCandidate) int {
		if a.Snubbed != b.Snubbed {
			if a.Snubbed {
				return 1
			}
			return -1
		}
		switch {
		case a.Rate > b.Rate:
			return -1
		case a.Rate < b.Rate:
			return 1
		}
		return int(a.Key - b.Key)
	})
	regular := min(c.Slots-1, len(want))
	if c.Slots == 1 {
		regular = 1
	}
	chosen := make(map[peerKey]bool, regular+1)
	for _, x := range want[:regular] {
		if x.Snubbed {
			break
		}
		dst = append(dst, x.Key)
		chosen[x.Key] = true
	}
	// Optimistic unchoke: keep the current one for OptimisticEvery unless
	// it left, lost interest or earned a regular slot.
	stillThere := false
	for _, x := range want {
		if x.Key == c.optimistic {
			stillThere = true
		}
	}
	if !stillThere || chosen[c.optimistic] || now.Sub(c.optSince) >= c.OptimisticEvery {
		var pool []peerKey
		for _, x := range want {
			if !chosen[x.Key] {
				pool = append(pool, x.Key)
			}
		}
		c.optimistic = noPeer
		if len(pool) > 0 {
			c.optimistic = pool[c.rng.IntN(len(pool))]
			c.optSince = now
		}
	}
	if c.optimistic != noPeer && !chosen[c.optimistic] && len(dst) < c.Slots {
		dst = append(dst, c.optimistic)
	}
	return dst
}
