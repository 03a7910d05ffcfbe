package piecestore

import (
	"fmt"
	"log/slog"
	"time"

	"flotilla/metainfo"
)

// Config configures a Store. Start from DefaultConfig; zero values of the
// tuning fields mean "default" so that a literal with only Dir, Info and
// InfoHash works too. Open never modifies the caller's Config.
type Config struct {
	// Dir is the output directory. It is created if missing; every file of
	// the torrent is created beneath it (Info.FilePath), never elsewhere.
	Dir string
	// Info is the torrent's validated metainfo (required).
	Info *metainfo.Info
	// InfoHash identifies the torrent's completion record.
	InfoHash [20]byte
	// Preallocate reserves disk space for every file with fallocate at Open
	// (a full disk is then reported at once); otherwise files are sparse.
	Preallocate bool
	// DirectIO writes the aligned middle of every run with O_DIRECT, past
	// the page cache, where the file system supports it (statx reports a
	// direct-I/O alignment); unaligned heads and tails, and file systems
	// without support, are written through the page cache as usual. A
	// download then costs no page-cache allocation: on a VM whose host
	// reclaims freed guest memory that allocation dominates the write cost.
	// The completion record's guarantee is unchanged (fdatasync still runs
	// before a piece is recorded).
	DirectIO bool
	// WriteBudget bounds the bytes of accepted, not yet written piece data.
	// Submit blocks (honouring its context) while the queue is over budget.
	// 0 means DefaultConfig's value. A budget below one piece still admits
	// one piece at a time.
	WriteBudget int64
	// SyncBytes: written data is synced and recorded once this many bytes
	// are pending. 0 means default: 16 MiB. A download's last pieces wait
	// for the sync of everything written since the previous one, and an
	// fdatasync costs about what it flushes (here, after O_DIRECT writes:
	// 1 MiB 1-2 ms, 8 MiB 7-8 ms, 64 MiB 44-52 ms); pieces written while a
	// sync runs join the next batch, so a slow disk still gets large ones.
	SyncBytes int64
	// SyncInterval: ... or this long after the first pending write,
	// whichever comes first. 0 means default.
	SyncInterval time.Duration
	// MaxOpenFiles bounds the descriptors the store keeps open for the
	// torrent's files (a file written with O_DIRECT costs two); files are
	// closed least recently used first and reopened when needed, so a
	// torrent of any number of files works under a small RLIMIT_NOFILE.
	// 0 means a quarter of the process's RLIMIT_NOFILE, between 8 and 4096.
	MaxOpenFiles int
	// CheckProgress, if not nil, is called while Open hashes data already
	// on disk (files that existed without a completion record, or changed
	// since it) with the pieces hashed so far and the pieces to hash. Calls
	// come one at a time from the hashing goroutines; keep it short.
	CheckProgress func(done, total int)
	// Logger receives warnings (ignored record, re-verification). nil
	// discards.
	Logger *slog.Logger
}

// DefaultConfig returns the default tuning; the caller sets Dir, Info and
// InfoHash.
func DefaultConfig() Config {
	return Config{
		WriteBudget:  16 << 20,
		SyncBytes:    16 << 20,
		SyncInterval: time.Second,
	}
}

// Validate reports whether the Config can be used by Open; errors wrap
// ErrConfig.
func (c *Config) Validate() error {
	switch {
	case c.Dir == "":
		return fmt.Errorf("%w: Dir is empty", ErrConfig)
	case c.Info == nil:
		return fmt.Errorf("%w: Info is nil", ErrConfig)
	case c.WriteBudget < 0:
		return fmt.Errorf("%w: WriteBudget %d < 0", ErrConfig, c.WriteBudget)
	case c.SyncBytes < 0:
		return fmt.Errorf("%w: SyncBytes %d < 0", ErrConfig, c.SyncBytes)
	case c.MaxOpenFiles < 0:
		return fmt.Errorf("%w: MaxOpenFiles %d < 0", ErrConfig, c.MaxOpenFiles)
	case c.SyncInterval < 0:
		return fmt.Errorf("%w: SyncInterval %v < 0", ErrConfig, c.SyncInterval)
	}
	return nil
}

// withDefaults returns a copy with zero tuning fields filled in.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.WriteBudget == 0 {
		c.WriteBudget = d.WriteBudget
	}
	if c.SyncBytes == 0 {
		c.SyncBytes = d.SyncBytes
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = d.SyncInterval
	}
	if c.MaxOpenFiles == 0 {
		c.MaxOpenFiles = defaultMaxOpenFiles()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
