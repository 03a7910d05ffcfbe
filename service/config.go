package service

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"flotilla/coordinator"
)

// Config configures a Service. Start from DefaultConfig.
type Config struct {
	// StateDir holds the job registry (jobs.json) and the torrents added.
	StateDir string
	// DataDir holds each job's data, under DataDir/<id>/.
	DataDir string
	// MaxActive is how many downloads run at once; more wait in the queue.
	// Seeding jobs do not count.
	MaxActive int
	// Limits are the seeding limits of a job added without its own.
	Limits Limits
	// Coordinator configures the coordinator (the peer listener, the
	// trackers); its Logger is set from Logger.
	Coordinator coordinator.Config
	// Cluster, if not nil, is the cluster to join at start.
	Cluster *coordinator.ClusterConfig
	// Job holds the defaults of every job (MaxPeers, DirectIO, memory
	// budgets); Torrent, Dir, Tiers and Seed are set per job.
	Job coordinator.JobConfig
	// Peers are connected to by every job besides its trackers' peers.
	Peers []netip.AddrPort
	// CloseTimeout bounds how long Close waits for the jobs to close
	// (trackers hear "stopped", stores flush).
	CloseTimeout time.Duration
	// SaveEvery is how often a running job's counters are written to the
	// state file (they are also written at every change of state).
	SaveEvery time.Duration
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns a configuration without its directories: two
// active downloads, seeding to a ratio of 1, peers on port 6881.
func DefaultConfig() Config {
	job := coordinator.DefaultJobConfig()
	job.MaxInFlightBytes, job.WriteBudget = 16<<20, 8<<20
	return Config{
		MaxActive:    2,
		Limits:       Limits{Seed: true, Ratio: 1},
		Coordinator:  coordinator.DefaultConfig(),
		Job:          job,
		CloseTimeout: 20 * time.Second,
		SaveEvery:    10 * time.Second,
	}
}

// ErrConfig is wrapped by Config.Validate's errors.
var ErrConfig = errors.New("service: invalid config")

// Validate reports the first field that cannot work.
func (c Config) Validate() error {
	switch {
	case c.StateDir == "":
		return fmt.Errorf("%w: no StateDir", ErrConfig)
	case c.DataDir == "":
		return fmt.Errorf("%w: no DataDir", ErrConfig)
	case c.MaxActive <= 0:
		return fmt.Errorf("%w: MaxActive %d <= 0", ErrConfig, c.MaxActive)
	case c.CloseTimeout <= 0 || c.SaveEvery <= 0:
		return fmt.Errorf("%w: CloseTimeout and SaveEvery must be positive", ErrConfig)
	}
	if err := c.Limits.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return nil
}
