// Package watchdog keeps the ledger of pending packets — requests that await
// an answer from a tracker, a peer or a worker (tracker intents, block
// requests, leases) and schedule entries ("next announce due at") — and
// reports the ones that miss their deadline (DESIGN.md point 2).
//
// # Ownership
//
// One goroutine, started by New and stopped by Close, owns the ledger and is
// the only code that reads or writes it: nobody else mutates a packet. Every
// other method only enqueues a command or asks the owner for a snapshot
// (Stats, Pending, Recent, Totals, Overdue), so the figures are consistent without a
// lock around the ledger.
//
// # The hot path: batching
//
// Issue takes the next ID from an atomic counter, builds the Ticket and
// returns it at once; Fulfil computes how long the packet took (monotonic
// clock) and returns it at once. Both append a small command to a
// multi-producer queue and never block. The queue is split into a few
// shards (a mutex-protected slice each, padded to its own cache line); the
// shard is chosen by packet ID, so Issue, Fulfil and Cancel of one packet keep
// their order while different packets spread over the shards. A producer
// that turns a shard from empty to non-empty sends a non-blocking wake-up on
// a channel of capacity 1. The owner swaps each non-empty shard's slice for
// a spare one and applies the whole batch without holding any lock, so the
// per-operation cost is an append under an uncontended-most-of-the-time
// mutex instead of a channel send and a goroutine switch. Snapshot requests
// are answered only after the owner has drained every shard, so a caller
// always sees its own earlier commands.
//
// # The ledger: ID table + slab + heap
//
// Pending packets live in a slab of entries reused through a free list,
// found by ID through an open-addressing hash table (one probe for Fulfil's
// lookup-and-delete), and ordered by deadline in an indexed binary
// min-heap (each entry knows its heap position, so Fulfil and Cancel remove
// it in O(log n)). A single time.Timer is armed to the earliest deadline and
// only re-armed when that changes; when it fires the owner pops the due
// packets — never a scan of the ledger. An overdue packet raises exactly one
// Alert, stays pending (marked Overdue) so Pending still shows it, and is
// evicted after Config.OverdueRetention if nobody fulfils or cancels it.
//
// # Bounds
//
// Memory does not grow with traffic: the ledger holds at most
// Config.MaxPending packets (further Issues still return Tickets but are
// counted as Dropped and not tracked; BenchmarkPendingMemory reports the
// bytes a pending packet costs),
// the command queue at most Config.MaxQueued commands (a caller that finds
// its shard full waits for the owner to drain it — back-pressure that only
// sustained overload or a stuck Pending filter can cause, counted as
// Totals.Stalls — because dropping a Fulfil would raise a false alert),
// latency figures are a fixed-size log histogram
// per kind (median and p99 within ~3.2%, max exact) for at most
// Config.MaxKinds kinds, and the Alerts channel is buffered: when the
// consumer lags an alert is dropped and counted, the owner never blocks.
// An owner that must act on every miss (the sub-chief returning a lease)
// therefore treats an alert as a wake-up and asks Overdue about its own
// packets, on an alert and periodically: a dropped alert delays the
// action, it never loses it.
//
// # Clock
//
// Config.Now is the clock. By default the watchdog reads only the monotonic
// clock (time.Since its start), which is cheaper than time.Now and immune to
// wall-clock steps. With a fake clock the real timer is only a hint; tests
// move the clock and call Check.
package watchdog
