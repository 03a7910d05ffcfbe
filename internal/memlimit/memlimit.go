// Package memlimit keeps the Go runtime's soft memory limit at a base the
// program chose plus what the parts running in it reserve.
//
// A program that bounds its buffers sets a soft limit a little above them
// (Set) so that the collector does not let the heap drift to twice what is
// live. Parts whose memory comes and goes with the work — a swarm node's
// job at the coordinator holds up to its pieces in flight and its streams'
// receive windows — reserve it while they run (Reserve). Without that, the
// live heap of a coordinator with seven nodes (about 110 MB) sat above its
// 48 MiB limit, and the collector ran every few milliseconds: a quarter of
// its CPU (issue 15).
//
// Until Set is called (a program that leaves the limit alone, or a user's
// GOMEMLIMIT that must win), Reserve only counts.
package memlimit

import (
	"runtime/debug"
	"sync"
)

var (
	mu       sync.Mutex
	enabled  bool
	base     int64
	reserved int64
)

// Set makes base plus the reservations the soft memory limit, now and
// whenever a reservation changes.
func Set(b int64) {
	mu.Lock()
	defer mu.Unlock()
	enabled, base = true, b
	apply()
}

// Limit is the limit Set keeps (base plus reservations), or 0 before Set.
func Limit() int64 {
	mu.Lock()
	defer mu.Unlock()
	if !enabled {
		return 0
	}
	return base + reserved
}

// Reserve raises the limit by n bytes until release is called; release
// may be called more than once (only the first counts).
func Reserve(n int64) (release func()) {
	if n <= 0 {
		return func() {}
	}
	mu.Lock()
	reserved += n
	apply()
	mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			mu.Lock()
			reserved -= n
			apply()
			mu.Unlock()
		})
	}
}

func apply() {
	if enabled {
		debug.SetMemoryLimit(base + reserved)
	}
}
