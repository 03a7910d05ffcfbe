package coordinator

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"flotilla/cluster"
	"flotilla/metainfo"
	"flotilla/peerswarm"
	"flotilla/peerwire"
	"flotilla/piecestore"
	"flotilla/swarm"
	"flotilla/tracker"
)

// JobConfig configures one torrent's job. Start from DefaultJobConfig.
type JobConfig struct {
	// Torrent is what to download or seed.
	Torrent *metainfo.Torrent
	// Dir is the directory holding the torrent's files (created by the
	// caller).
	Dir string
	// Tiers are the tracker tiers to announce to: the torrent's, without
	// those the caller found unusable (metainfo.CheckTrackerURL). Empty:
	// no trackers, peers come from Start's argument (and swarm nodes).
	Tiers [][]string
	// Seed keeps serving uploads once the download is complete.
	Seed bool
	// MaxPeers caps the local swarm's peer connections; in a cluster it is
	// also what the caller advertises as the coordinator's slots.
	MaxPeers int
	// MorePeersBelow is the fraction of MaxPeers under which a download
	// asks its trackers for more peers (tracker.Announcer.MorePeers, which
	// each tracker honours no sooner than its min interval); 0 never asks.
	MorePeersBelow float64
	// Preallocate reserves the files' space at open (piecestore).
	Preallocate bool
	// DirectIO writes verified pieces with O_DIRECT where possible.
	DirectIO bool
	// MaxInFlightBytes bounds the sub-chief's piece buffers (swarm);
	// WriteBudget bounds the store's queue of pieces to write.
	MaxInFlightBytes, WriteBudget int64
	// CheckProgress, if not nil, is called while OpenJob hashes data
	// already on disk (piecestore.Config.CheckProgress), on the caller's
	// goroutine or the store's.
	CheckProgress func(done, total int)
	// TrackerSilentAfter and TrackerWarnEvery time the TrackersSilent
	// event (see TrackersSilent and the Default timings).
	TrackerSilentAfter, TrackerWarnEvery time.Duration
	// Handover are peer connections for the local swarm to adopt at Start
	// (a magnet's metadata fetch: metadata.FetchKeep), so that the
	// download starts on them instead of dialing the same peers again.
	// The job owns them from OpenJob on: Start hands them on, Close (or a
	// failed OpenJob or Start) closes them.
	Handover []peerwire.Handover
}

// DefaultJobConfig returns the defaults of coord download, without a
// torrent or a directory.
func DefaultJobConfig() JobConfig {
	return JobConfig{
		MaxPeers:           80,
		MorePeersBelow:     defaultMorePeersBelow,
		Preallocate:        true,
		DirectIO:           true,
		MaxInFlightBytes:   swarm.DefaultConfig().MaxInFlightBytes,
		WriteBudget:        piecestore.DefaultConfig().WriteBudget,
		TrackerSilentAfter: defaultTrackerSilentAfter,
		TrackerWarnEvery:   defaultTrackerWarnEvery,
	}
}

// ErrConfig is wrapped by JobConfig.Validate's errors.
var ErrConfig = errors.New("coordinator: invalid config")

// Validate reports the first field that cannot work.
func (c JobConfig) Validate() error {
	switch {
	case c.Torrent == nil:
		return fmt.Errorf("%w: no Torrent", ErrConfig)
	case c.Dir == "":
		return fmt.Errorf("%w: no Dir", ErrConfig)
	case c.MaxPeers <= 0:
		return fmt.Errorf("%w: MaxPeers %d <= 0", ErrConfig, c.MaxPeers)
	case !(c.MorePeersBelow >= 0 && c.MorePeersBelow <= 1):
		return fmt.Errorf("%w: MorePeersBelow %v not in [0, 1]", ErrConfig, c.MorePeersBelow)
	case c.TrackerSilentAfter <= 0 || c.TrackerWarnEvery <= 0:
		return fmt.Errorf("%w: tracker warning timings must be positive", ErrConfig)
	}
	return nil
}

// Job is one torrent: its store, its sub-chief (swarm.Download), its
// tracker pipelines (tracker.Announcer) and, in a cluster, its sessions to
// swarm nodes. OpenJob opens its store, Verify optionally re-hashes it,
// Start starts downloading; from Start until Close one goroutine (run, the
// coordinator's main loop for this torrent) owns the job's state and
// reports on Events. Methods are not for concurrent use, except Events,
// Trackers and PieceSources (which the job's own goroutines answer).
type Job struct {
	c     *Coordinator
	cfg   JobConfig
	store *piecestore.Store
	dl    *swarm.Download
	ln    *jobListener       // the torrent's incoming connections, from Start
	ann   *tracker.Announcer // nil without trackers

	events    chan Event
	cmds      chan func()
	peerLists chan peerList // from the tracker peer watches (peersource.go)
	watches   sync.WaitGroup
	stopWatch context.CancelFunc // nil without trackers
	stopDHT   context.CancelFunc // nil without DHT lookups (dhtsource.go)
	dhtPoke   chan struct{}
	members   chan cluster.Event
	closing   chan struct{}
	done      chan struct{}
	started   bool

	closeOnce sync.Once
	closeErr  error

	// Owned by run (and by Close once run has returned).
	health *trackerHealth
	demand peerDemand
	link   *nodeLink // nil outside a cluster
	queue  []Event   // events not yet read
}

// OpenJob opens the job's store, which hashes data already on disk if
// there is no completion record (see JobConfig.CheckProgress). The store's
// errors are returned as they are (piecestore's kinds, for errors.Is).
func (c *Coordinator) OpenJob(cfg JobConfig) (*Job, error) {
	if err := cfg.Validate(); err != nil {
		closeHandover(cfg.Handover)
		return nil, err
	}
	t := cfg.Torrent
	scfg := piecestore.DefaultConfig()
	scfg.Dir, scfg.Info, scfg.InfoHash, scfg.Logger = cfg.Dir, t.Info, t.InfoHash, c.log
	scfg.Preallocate, scfg.DirectIO = cfg.Preallocate, cfg.DirectIO
	scfg.WriteBudget = cfg.WriteBudget
	scfg.CheckProgress = cfg.CheckProgress
	store, err := piecestore.Open(scfg)
	if err != nil {
		closeHandover(cfg.Handover)
		return nil, err
	}
	cfg.Handover = slices.Clone(cfg.Handover)
	return &Job{c: c, cfg: cfg, store: store,
		events: make(chan Event), cmds: make(chan func()), members: make(chan cluster.Event),
		peerLists: make(chan peerList),
		closing:   make(chan struct{}), done: make(chan struct{})}, nil
}

// closeHandover closes connections no swarm adopted.
func closeHandover(hs []peerwire.Handover) {
	for _, h := range hs {
		h.Conn.Close()
	}
}

// StoreStats are the store's figures, such as how many pieces were
// complete and how many were hashed at open.
func (j *Job) StoreStats() piecestore.Stats { return j.store.Stats() }

// PieceSources reports which worker delivered each piece
// (swarm.Download.PieceSources). Like Trackers, and unlike the other
// methods, any goroutine may call it while the job runs; before Start it
// returns ErrJobClosed.
func (j *Job) PieceSources(ctx context.Context) (swarm.PieceSources, error) {
	if !j.started {
		return swarm.PieceSources{}, ErrJobClosed
	}
	return j.dl.PieceSources(ctx)
}

// Verify re-hashes the data on disk (before Start). Its errors are wrapped
// with "verify: "; it stops early with ctx's error once ctx is done.
func (j *Job) Verify(ctx context.Context) error {
	if err := j.store.Verify(ctx, nil); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("verify: %w", err)
	}
	return nil
}

// Start registers the torrent with the coordinator's router (while
// another job runs it: ErrTorrentRunning) and starts the sub-chief, whose
// local swarm accepts the incoming connections routed to the torrent,
// with peers to connect to besides those the trackers give, and the
// tracker pipelines; then the job's loop. A tracker error (wrapped with
// "trackers: ") is returned only when there are no peers: with peers the
// job goes on without trackers. After an error the torrent is no longer
// registered.
func (j *Job) Start(peers []netip.AddrPort) (err error) {
	t := j.cfg.Torrent
	ln, err := j.c.router.listen(t.InfoHash)
	if err != nil {
		return err
	}
	j.ln = ln
	defer func() {
		if err != nil {
			ln.Close()
		}
	}()
	peerID := tracker.NewPeerID()
	dcfg := swarm.DefaultConfig()
	dcfg.InfoHash, dcfg.Info, dcfg.InfoBytes, dcfg.PeerID = t.InfoHash, t.Info, t.InfoBytes, peerID
	dcfg.Storage, dcfg.Listener, dcfg.MaxPeers, dcfg.Seed = j.store, ln, j.cfg.MaxPeers, j.cfg.Seed
	dcfg.Watchdog, dcfg.Logger = j.c.wd, j.c.log
	dcfg.MaxInFlightBytes = j.cfg.MaxInFlightBytes
	dcfg.Encryption = j.c.enc
	local, err := peerswarm.New(dcfg)
	if err != nil {
		return err
	}
	if j.dl, err = swarm.New(dcfg, local); err != nil {
		return err
	}
	local.Adopt(j.cfg.Handover)
	j.cfg.Handover = nil
	if len(j.cfg.Tiers) > 0 {
		port, key, dl := uint16(j.c.Addr().Port), tracker.NewKey(), j.dl
		j.ann, err = j.c.tc.AddTorrent(tracker.TorrentConfig{
			InfoHash: t.InfoHash,
			Tiers:    j.cfg.Tiers,
			ParamsFunc: func() tracker.AnnounceParams {
				up, down, left := dl.Stats()
				return tracker.AnnounceParams{PeerID: peerID, Port: port, Key: key, NumWant: 80,
					Uploaded: up, Downloaded: down, Left: left}
			},
		})
		if err != nil && len(peers) == 0 {
			return fmt.Errorf("trackers: %w", err)
		}
	}
	if len(peers) > 0 {
		j.dl.AddPeers(peers)
	}
	if j.ann != nil {
		j.watchTrackers()
	}
	j.watchDHT()
	j.demand = newPeerDemand(j.cfg.MaxPeers, j.cfg.MorePeersBelow)
	j.started = true
	j.health = newTrackerHealth(time.Now(), j.cfg.TrackerSilentAfter, j.cfg.TrackerWarnEvery)
	go j.run()
	j.c.do(func() {
		j.c.jobs[j] = struct{}{}
		if j.c.members != nil {
			j.attach(j.c.members)
		}
	})
	return nil
}

// Events delivers what the job reports (see Event), from Start on. The
// loop never waits for its reader: events queue (Progress coalesced) until
// read. The channel is not closed; stop reading after Failed, or when
// done with the job.
func (j *Job) Events() <-chan Event { return j.events }

// attach gives the job the cluster (called on the coordinator's goroutine).
func (j *Job) attach(m *membership) {
	t := j.cfg.Torrent
	f := func() {
		j.link = newNodeLink(m, t, j.c.Addr(), j.c.log, j.emit)
		j.link.job.Encryption = j.c.enc.String() // the nodes' swarms follow ours
		j.link.expect = j.dl.ExpectWorkers
	}
	select {
	case j.cmds <- f:
	case <-j.done:
	}
}

// memberEvent hands the job a membership change (called on the
// coordinator's goroutine).
func (j *Job) memberEvent(ev cluster.Event) {
	select {
	case j.members <- ev:
	case <-j.done:
	}
}

// Close stops the job's loop and closes, in order, its node sessions, its
// tracker pipelines (which announce "stopped"), its sub-chief and its
// store (which flushes and records what is verified). It returns the
// first error met.
func (j *Job) Close() error {
	j.closeOnce.Do(func() {
		closeHandover(j.cfg.Handover) // not started: nobody took them
		j.cfg.Handover = nil
		var errs []error
		if j.started {
			close(j.closing)
			<-j.done
			if j.stopWatch != nil {
				j.stopWatch()
			}
			if j.stopDHT != nil {
				j.stopDHT()
			}
			j.watches.Wait()
			j.c.do(func() { delete(j.c.jobs, j) })
		}
		// How long each part takes to close is logged: the time from the
		// last piece to the exit is part of a short download's wall.
		took := []any{}
		t := time.Now()
		lap := func(what string) {
			now := time.Now()
			took = append(took, what, now.Sub(t).Round(time.Millisecond))
			t = now
		}
		if j.link != nil {
			j.link.close()
			lap("sessions")
		}
		if j.ann != nil {
			errs = append(errs, j.ann.Close())
			lap("trackers")
		}
		if j.dl != nil {
			errs = append(errs, j.dl.Close())
			lap("subchief")
		}
		if j.ln != nil {
			j.ln.Close() // normally closed already, by the local swarm
		}
		errs = append(errs, j.store.Close())
		lap("store")
		j.c.log.Debug("job closed", took...)
		for _, err := range errs {
			if err != nil {
				j.closeErr = err
				break
			}
		}
	})
	return j.closeErr
}
