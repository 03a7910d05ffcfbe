package swarm

import (
	"container/heap"
	"time"
)

// deadlineTable is the peer swarm's request watchdog: a min-heap of block
// request deadlines, the same mechanism as package watchdog but passive
// and private to the swarm's owner goroutine (one entry per request at
// tens of thousands per second would flood a shared ledger). Entries are
// never removed eagerly: a fulfilled or cancelled request leaves a stale
// entry that Expired skips because the owner's live table disagrees.
type deadlineTable struct {
	h deadlineHeap
}

type deadline struct {
	at   time.Time
	peer peerKey
	gen  uint32 // the peer connection's generation (keys are reused)
	blk  Block
}

type deadlineHeap []deadline

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h deadlineHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *deadlineHeap) Push(x any)        { *h = append(*h, x.(deadline)) }
func (h *deadlineHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Add records a request that must be answered by at.
func (t *deadlineTable) Add(d deadline) { heap.Push(&t.h, d) }

// Len is the number of entries, stale ones included.
func (t *deadlineTable) Len() int { return len(t.h) }

// Next returns the earliest deadline, if any.
func (t *deadlineTable) Next() (time.Time, bool) {
	if len(t.h) == 0 {
		return time.Time{}, false
	}
	return t.h[0].at, true
}

// Expired pops every entry due at or before now and appends it to dst.
func (t *deadlineTable) Expired(now time.Time, dst []deadline) []deadline {
	for len(t.h) > 0 && !t.h[0].at.After(now) {
		dst = append(dst, heap.Pop(&t.h).(deadline))
	}
	return dst
}

// Compact drops stale entries (live reports false) when the heap has grown
// well beyond the live request count.
func (t *deadlineTable) Compact(live func(deadline) bool) {
	out := t.h[:0]
	for _, d := range t.h {
		if live(d) {
			out = append(out, d)
		}
	}
	clear(t.h[len(out):])
	t.h = out
	heap.Init(&t.h)
}
