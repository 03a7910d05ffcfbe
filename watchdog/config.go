package watchdog

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// ErrConfig is wrapped by Config.Validate and New for a bad Config.
var ErrConfig = errors.New("watchdog: invalid config")

// Config configures a Watchdog. The zero value is not valid; start from
// DefaultConfig. New never modifies the caller's copy.
type Config struct {
	// AlertBuffer is the capacity of the Alerts channel. When the channel is
	// full an alert is dropped and counted (KindStats.AlertsDropped); the
	// owner goroutine never blocks on it. Must be >= 0.
	AlertBuffer int

	// MaxPending bounds the ledger. An Issue that arrives while the ledger
	// already holds MaxPending packets still returns a Ticket, but the packet
	// is not tracked: it is counted in KindStats.Dropped, raises no alert,
	// and a later Fulfil/Cancel of it is ignored. Must be in [1, 2^30].
	MaxPending int

	// MaxQueued bounds the commands (Issue, Fulfil, Cancel, Annotate) waiting
	// for the owner goroutine, summed over all queue shards (each shard gets
	// an equal share). It only matters when callers outpace the owner for a
	// long time (millions of operations per second) or the owner is stuck in
	// a Pending filter: a caller that finds its shard full waits until the
	// owner has drained it (back-pressure, counted in Totals.Stalls) rather
	// than losing the command — a lost Fulfil would raise a false alert.
	// Must be > 0.
	MaxQueued int

	// Shards is the number of command queue shards (rounded up to a power of
	// two). Commands for one packet always use the same shard, so their order
	// is kept. 0 picks a value from GOMAXPROCS.
	Shards int

	// OverdueRetention is how long an overdue, still unfulfilled packet stays
	// in the ledger after its alert before it is evicted (counted as
	// KindStats.Expired). 0 keeps overdue packets until they are fulfilled or
	// cancelled (then MaxPending is the only bound). Must be >= 0.
	OverdueRetention time.Duration

	// History is how many recently finished packets (fulfilled or expired)
	// Recent can show. 0 disables the history. Must be >= 0.
	History int

	// MaxKinds bounds the number of distinct kinds with their own figures
	// (each kind holds a fixed-size latency histogram of a few KiB). Further
	// kinds are accounted under the kind OtherKind. Must be > 0.
	MaxKinds int

	// Logger receives rare diagnostics (never one line per packet). nil means
	// slog.New(slog.DiscardHandler).
	Logger *slog.Logger

	// Now is the clock. nil means the monotonic clock (time.Since the
	// watchdog's start, cheaper than time.Now). Tests inject a fake clock and
	// call Watchdog.Check after moving it; the real timer the owner arms is
	// then only a hint and spurious wake-ups are harmless.
	Now func() time.Time
}

// maxPendingLimit keeps slab positions within int32.
const maxPendingLimit = 1 << 30

// OtherKind is the kind under which figures are kept once Config.MaxKinds
// distinct kinds have been seen.
const OtherKind = "(other)"

// DefaultConfig returns a Config suitable for production use.
func DefaultConfig() Config {
	return Config{
		AlertBuffer:      1024,
		MaxPending:       1_000_000,
		MaxQueued:        1 << 20,
		OverdueRetention: 10 * time.Minute,
		History:          256,
		MaxKinds:         256,
	}
}

// Validate reports whether c is usable; errors wrap ErrConfig.
func (c Config) Validate() error {
	switch {
	case c.AlertBuffer < 0:
		return fmt.Errorf("%w: AlertBuffer %d < 0", ErrConfig, c.AlertBuffer)
	case c.MaxPending <= 0 || c.MaxPending > maxPendingLimit:
		return fmt.Errorf("%w: MaxPending %d not in [1, %d]", ErrConfig, c.MaxPending, maxPendingLimit)
	case c.MaxQueued <= 0:
		return fmt.Errorf("%w: MaxQueued %d <= 0", ErrConfig, c.MaxQueued)
	case c.Shards < 0 || c.Shards > 1024:
		return fmt.Errorf("%w: Shards %d not in [0, 1024]", ErrConfig, c.Shards)
	case c.OverdueRetention < 0:
		return fmt.Errorf("%w: OverdueRetention %v < 0", ErrConfig, c.OverdueRetention)
	case c.History < 0:
		return fmt.Errorf("%w: History %d < 0", ErrConfig, c.History)
	case c.MaxKinds <= 0:
		return fmt.Errorf("%w: MaxKinds %d <= 0", ErrConfig, c.MaxKinds)
	}
	return nil
}
