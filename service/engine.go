package service

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"flotilla/coordinator"
	"flotilla/dht"
	"flotilla/metainfo"
	"flotilla/peerwire"
	"flotilla/piecestore"
	"flotilla/swarm"
	"flotilla/watchdog"
)

// engine runs torrents. The service's loop calls start and a runner's
// Close from goroutines of their own (both may take long); an engine is
// safe for concurrent use.
type engine interface {
	// start opens the job's store (which may hash data already on disk)
	// and starts it.
	start(spec jobSpec) (runner, error)
	// addr is the peer listener's address ("" when there is none).
	addr() string
	// cluster is a snapshot of the cluster; false outside one.
	cluster() (coordinator.ClusterInfo, bool)
	// watchdog is the shared watchdog's figures per packet kind.
	watchdog() []watchdog.KindStats
	// dht is the DHT node's figures; false without a DHT.
	dht() (dht.Stats, bool)
	// dhtPeers looks up peers for an info-hash in the DHT; false
	// without a DHT.
	dhtPeers(ctx context.Context, infoHash [20]byte) ([]netip.AddrPort, bool)
	close() error
}

// runner is one started job.
type runner interface {
	Events() <-chan coordinator.Event
	Close() error
	// PiecesComplete is how many pieces the job's store records as
	// complete; it may be called after Close.
	PiecesComplete() int
	// StoreStats are the job's store figures (piecestore.Stats).
	StoreStats() piecestore.Stats
	// Trackers reports the job's trackers (coordinator.Job.Trackers); any
	// goroutine, while the job runs.
	Trackers(ctx context.Context, maxPeers int) ([]coordinator.TrackerReport, error)
	// PieceSources reports who delivered each piece
	// (coordinator.Job.PieceSources); any goroutine, while the job runs.
	PieceSources(ctx context.Context) (swarm.PieceSources, error)
}

// jobSpec is what a job needs to start.
type jobSpec struct {
	torrent *metainfo.Torrent
	dir     string
	tiers   [][]string
	seed    bool
	peers   []netip.AddrPort
	// handover are a magnet fetch's connections for the job to start on
	// (coordinator.JobConfig.Handover); start owns them, and closes them
	// if it fails.
	handover []peerwire.Handover
}

// coordEngine runs jobs on one coordinator.Coordinator, which routes
// incoming peer connections to them by info-hash.
type coordEngine struct {
	c      *coordinator.Coordinator
	jobCfg coordinator.JobConfig // defaults for every job
}

var _ engine = (*coordEngine)(nil)

// newCoordEngine opens the coordinator (the peer listener) and joins the
// cluster if one is configured.
func newCoordEngine(ccfg coordinator.Config, cl *coordinator.ClusterConfig, jobCfg coordinator.JobConfig) (*coordEngine, error) {
	c, err := coordinator.New(ccfg)
	if err != nil {
		return nil, err
	}
	e := &coordEngine{c: c, jobCfg: jobCfg}
	if cl != nil {
		if _, err = c.JoinCluster(*cl); err != nil {
			c.Close()
			return nil, err
		}
	}
	return e, nil
}

func (e *coordEngine) start(spec jobSpec) (runner, error) {
	cfg := e.jobCfg
	cfg.Torrent, cfg.Dir, cfg.Tiers, cfg.Seed = spec.torrent, spec.dir, spec.tiers, spec.seed
	cfg.Handover = spec.handover // OpenJob closes them if it fails, job.Close if Start does
	pl := spec.torrent.Info.PieceLength
	cfg.MaxInFlightBytes = max(cfg.MaxInFlightBytes, 4*pl)
	cfg.WriteBudget = max(cfg.WriteBudget, 2*pl)
	job, err := e.c.OpenJob(cfg)
	if err != nil {
		return nil, err
	}
	if err := job.Start(spec.peers); err != nil {
		job.Close()
		return nil, err
	}
	return coordRunner{job}, nil
}

func (e *coordEngine) addr() string                             { return e.c.Addr().String() }
func (e *coordEngine) cluster() (coordinator.ClusterInfo, bool) { return e.c.Cluster() }
func (e *coordEngine) watchdog() []watchdog.KindStats           { return e.c.WatchdogStats() }

func (e *coordEngine) dhtPeers(ctx context.Context, ih [20]byte) ([]netip.AddrPort, bool) {
	return e.c.DHTPeers(ctx, ih)
}

func (e *coordEngine) dht() (dht.Stats, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return e.c.DHTStats(ctx)
}

func (e *coordEngine) close() error {
	if err := e.c.Close(); err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	return nil
}

// coordRunner is a started coordinator.Job.
type coordRunner struct{ *coordinator.Job }

func (r coordRunner) PiecesComplete() int { return r.StoreStats().PiecesComplete }
