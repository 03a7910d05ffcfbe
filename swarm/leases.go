package swarm

import (
	"math/rand/v2"
)

// maxWorkers bounds the swarms one sub-chief drives (a bit per worker).
const maxWorkers = 64

// leaseBook is the sub-chief's passive record of which worker holds which
// pieces. A piece is in the pool (held by nobody), held by one worker, or
// in end game held by several; done pieces are out of play. The pool is
// handed out in a random order fixed at start so that swarms spread over
// the torrent instead of crowding the same pieces.
type leaseBook struct {
	holders []uint64 // bit w set: worker slot w holds the piece
	// started bit w set: worker w kept the piece when asked to give back
	// what it had not started, so it is in progress there (or the worker
	// did not answer): only such pieces are worth duplicating.
	started []uint64
	done    []bool
	pool    []int // stack, stale entries skipped lazily
	inPool  []bool
	held    [maxWorkers]int
	nDone   int
}

func newLeaseBook(n int, have func(int) bool, seed uint64) *leaseBook {
	lb := &leaseBook{holders: make([]uint64, n), started: make([]uint64, n), done: make([]bool, n), inPool: make([]bool, n)}
	rng := rand.New(rand.NewPCG(seed, 3))
	for _, i := range rng.Perm(n) {
		if have(i) {
			lb.done[i] = true
			lb.nDone++
			continue
		}
		lb.pool = append(lb.pool, i)
		lb.inPool[i] = true
	}
	return lb
}

// Left is the number of pieces not yet done.
func (lb *leaseBook) Left() int { return len(lb.done) - lb.nDone }

// Held is how many pieces worker w holds.
func (lb *leaseBook) Held(w int) int { return lb.held[w] }

// Holds reports whether worker w holds piece i.
func (lb *leaseBook) Holds(w, i int) bool { return lb.holders[i]&(1<<w) != 0 }

// PoolEmpty reports whether no piece is waiting for a worker.
func (lb *leaseBook) PoolEmpty() bool {
	for len(lb.pool) > 0 {
		i := lb.pool[len(lb.pool)-1]
		if lb.inPool[i] {
			return false
		}
		lb.pool = lb.pool[:len(lb.pool)-1]
	}
	return true
}

// Take moves up to n pool pieces to worker w and appends them to dst.
func (lb *leaseBook) Take(w, n int, dst []int) []int {
	for n > 0 && len(lb.pool) > 0 {
		i := lb.pool[len(lb.pool)-1]
		lb.pool = lb.pool[:len(lb.pool)-1]
		if !lb.inPool[i] {
			continue
		}
		lb.inPool[i] = false
		lb.holders[i] |= 1 << w
		lb.held[w]++
		dst = append(dst, i)
		n--
	}
	return dst
}

// Duplicate gives worker w up to n pieces already held by others (end game
// across workers), preferring pieces with the fewest holders.
func (lb *leaseBook) Duplicate(w, n int, dst []int) []int {
	return lb.duplicate(w, n, maxWorkers, false, dst)
}

// DuplicateStarted is Duplicate restricted to pieces some holder is known
// to have started (MarkStarted) and held by fewer than maxHolders workers:
// a piece nobody has started is cheaper to steal than to duplicate.
func (lb *leaseBook) DuplicateStarted(w, n, maxHolders int, dst []int) []int {
	return lb.duplicate(w, n, maxHolders, true, dst)
}

// DuplicateHeld is DuplicateStarted without the started condition: any
// piece held by fewer than maxHolders workers (the last pieces, when a
// steal's round trip would cost more than a duplicate's bytes).
func (lb *leaseBook) DuplicateHeld(w, n, maxHolders int, dst []int) []int {
	return lb.duplicate(w, n, maxHolders, false, dst)
}

func (lb *leaseBook) duplicate(w, n, maxHolders int, onlyStarted bool, dst []int) []int {
	for want := 1; want < maxHolders+1 && want <= maxWorkers && n > 0; want++ {
		found := false
		for i, h := range lb.holders {
			if n == 0 {
				break
			}
			if lb.done[i] || h == 0 || h&(1<<w) != 0 || (onlyStarted && lb.started[i]&h == 0) {
				continue
			}
			c := popcount(h)
			if c >= maxHolders {
				continue
			}
			if c > want {
				found = true
				continue
			}
			if c < want {
				continue
			}
			found = true
			lb.holders[i] |= 1 << w
			lb.held[w]++
			dst = append(dst, i)
			n--
		}
		if !found {
			break
		}
	}
	return dst
}

// DuplicateFromSlower gives worker w up to n started pieces (some holder
// is known to have started them) whose every holder is in the mask
// slower, preferring pieces with the fewest holders: at the very end of a
// download a fast worker with nothing to do joins pieces that only slower
// workers are fetching, whatever their number of holders.
func (lb *leaseBook) DuplicateFromSlower(w, n int, slower uint64, dst []int) []int {
	for want := 1; want < maxWorkers && n > 0; want++ {
		more := false
		for i, h := range lb.holders {
			if n == 0 {
				break
			}
			if lb.done[i] || h == 0 || h&(1<<w) != 0 || h&^slower != 0 || lb.started[i]&h == 0 {
				continue
			}
			c := popcount(h)
			if c > want {
				more = true
				continue
			}
			if c < want {
				continue
			}
			lb.holders[i] |= 1 << w
			lb.held[w]++
			dst = append(dst, i)
			n--
		}
		if !more {
			break
		}
	}
	return dst
}

// MarkStarted records that worker w is downloading piece i (it kept the
// piece when asked for its unstarted ones).
func (lb *leaseBook) MarkStarted(w, i int) {
	if i >= 0 && i < len(lb.holders) && lb.holders[i]&(1<<w) != 0 {
		lb.started[i] |= 1 << w
	}
}

// Started reports whether worker w is known to have started piece i.
func (lb *leaseBook) Started(w, i int) bool { return lb.started[i]&(1<<w) != 0 }

func popcount(x uint64) int {
	n := 0
	for x != 0 {
		x &= x - 1
		n++
	}
	return n
}

// Return gives pieces back from worker w (revoked, worker gone); a piece
// nobody else holds goes back to the pool. It reports how many of pieces
// w held (the others are ignored).
func (lb *leaseBook) Return(w int, pieces []int) (returned int) {
	for _, i := range pieces {
		if i < 0 || i >= len(lb.holders) || lb.holders[i]&(1<<w) == 0 {
			continue
		}
		returned++
		lb.holders[i] &^= 1 << w
		lb.started[i] &^= 1 << w
		lb.held[w]--
		if lb.holders[i] == 0 && !lb.done[i] && !lb.inPool[i] {
			lb.inPool[i] = true
			lb.pool = append(lb.pool, i)
		}
	}
	return returned
}

// Shared counts the pieces of pieces that worker w holds, not done, that
// another worker holds too.
func (lb *leaseBook) Shared(w int, pieces []int) (n int) {
	for _, i := range pieces {
		if i >= 0 && i < len(lb.holders) && !lb.done[i] && lb.holders[i]&(1<<w) != 0 && lb.holders[i]&^(1<<w) != 0 {
			n++
		}
	}
	return n
}

// HeldBy appends the pieces worker w holds.
func (lb *leaseBook) HeldBy(w int, dst []int) []int {
	for i, h := range lb.holders {
		if h&(1<<w) != 0 {
			dst = append(dst, i)
		}
	}
	return dst
}

// Done marks piece i done and returns the other workers that held it (they
// should be told to drop it). It reports false if i was already done.
func (lb *leaseBook) Done(i int, by int) (others uint64, fresh bool) {
	if i < 0 || i >= len(lb.done) || lb.done[i] {
		return 0, false
	}
	lb.done[i] = true
	lb.nDone++
	lb.inPool[i] = false
	h := lb.holders[i]
	for w := 0; w < maxWorkers; w++ {
		if h&(1<<w) != 0 {
			lb.held[w]--
		}
	}
	lb.holders[i] = 0
	lb.started[i] = 0
	if by >= 0 {
		h &^= 1 << by
	}
	return h, true
}

// IsDone reports whether piece i is done.
func (lb *leaseBook) IsDone(i int) bool { return lb.done[i] }

// leaseTarget is the lease size for a worker delivering rate bytes/s:
// enough pieces for horizon seconds of work, at least lo, at most hi.
func leaseTarget(rate float64, pieceLen int64, horizonSec float64, lo, hi int) int {
	n := int(rate * horizonSec / float64(pieceLen))
	return max(lo, min(n, hi))
}
