package service

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"flotilla/internal/atomicfile"
	"flotilla/metainfo"
	"flotilla/peerwire"
	"flotilla/piecestore"
)

// JobInfo is a job as the list shows it.
type JobInfo struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	InfoHash string `json:"info_hash"`
	State    string `json:"state"`
	// Error is why a failed job failed; Waiting why a queued one waits.
	Error   string `json:"error,omitempty"`
	Waiting string `json:"waiting,omitempty"`
	// Size is the torrent's length; BytesDone what is verified and written.
	Size      int64   `json:"size"`
	BytesDone int64   `json:"bytes_done"`
	Progress  float64 `json:"progress"` // BytesDone/Size, 0 to 1
	// ETA is the time left at the current download rate (absent when
	// not downloading or nothing arrives).
	ETA        Duration  `json:"eta,omitempty"`
	Pieces     int       `json:"pieces"`
	PiecesDone int       `json:"pieces_done"`
	DownRate   float64   `json:"down_rate"` // bytes/s
	UpRate     float64   `json:"up_rate"`
	Downloaded int64     `json:"downloaded"` // payload bytes over every run
	Uploaded   int64     `json:"uploaded"`
	Ratio      float64   `json:"ratio"` // uploaded/size
	Peers      int       `json:"peers"`
	Seeds      int       `json:"seeds"`
	Added      time.Time `json:"added"`
	Completed  time.Time `json:"completed,omitzero"`
	Seeded     Duration  `json:"seeded"`
	Limits     Limits    `json:"limits"`
	// DataDir is where the job's files are, on the server.
	DataDir string `json:"data_dir"`
}

// JobDetail is one job with its files, workers and trackers.
type JobDetail struct {
	JobInfo
	// StorageWait is how long this run's sub-chief waited for the disk
	// (back-pressure from a disk slower than the network).
	StorageWait Duration      `json:"storage_wait"`
	Files       []FileInfo    `json:"files"`
	Workers     []WorkerInfo  `json:"workers"`
	Trackers    []TrackerInfo `json:"trackers"`
	// LeaseReturns counts the pieces this run's sub-chief took back from
	// workers' leases to lease them again, by why.
	LeaseReturns LeaseReturns `json:"lease_returns"`
	// EndGame is what this run's end game across swarms cost: pieces
	// leased to a second swarm while another was fetching them.
	EndGame EndGame `json:"end_game"`

	// disk is the running job's store figures (for /metrics; nil when
	// the job does not run or the detail is for the API).
	disk *piecestore.Stats
}

// LeaseReturns counts pieces returned from a worker's lease to the pool
// (swarm.LeaseReturns).
type LeaseReturns struct {
	Missed   int `json:"missed"`    // the worker missed its lease deadline
	Gone     int `json:"gone"`      // the worker left or failed
	BadPiece int `json:"bad_piece"` // its piece failed the re-hash
	Revoked  int `json:"revoked"`   // given back when asked (rebalancing)
}

// EndGame counts the end game across swarms (swarm.EndGame).
type EndGame struct {
	Duplicated      int   `json:"duplicated"`       // extra copies of pieces leased
	DuplicatedBytes int64 `json:"duplicated_bytes"` // their length: at most this was fetched twice
	Cancelled       int   `json:"cancelled"`        // copies dropped because another arrived first
	Twice           int   `json:"twice"`            // copies delivered after another was accepted
}

// FileInfo is one file of a torrent.
type FileInfo struct {
	Path   string `json:"path"` // relative to DataDir
	Length int64  `json:"length"`
}

// WorkerInfo is one swarm's part in a download: "local" (this daemon's
// peers) or a swarm node (swarm.WorkerStatus).
type WorkerInfo struct {
	Name       string  `json:"name"`
	State      string  `json:"state"`
	Peers      int     `json:"peers"`
	Seeds      int     `json:"seeds"`
	DownRate   float64 `json:"down_rate"`
	UpRate     float64 `json:"up_rate"`
	Downloaded int64   `json:"downloaded"`
	Uploaded   int64   `json:"uploaded"`
	Delivered  int     `json:"pieces_delivered"`
	Leased     int     `json:"pieces_leased"`
	HashFails  int     `json:"hash_fails"`
	Banned     int     `json:"banned"`
}

// TrackerInfo is one tracker of a torrent and what its announces showed.
type TrackerInfo struct {
	URL  string `json:"url"`
	Tier int    `json:"tier"`
	// Usable is false for a URL that cannot be announced to (its Error
	// says why).
	Usable    bool      `json:"usable"`
	LastError string    `json:"last_error,omitempty"`
	ErrorAt   time.Time `json:"last_error_at,omitzero"`
	// Overdue counts the times the tracker was reported late (once until
	// it answers again); LastOverdue is how long the newest late request
	// had waited.
	Overdue     int       `json:"overdue"`
	LastOverdue Duration  `json:"last_overdue"`
	OverdueAt   time.Time `json:"last_overdue_at,omitzero"`

	// The rest is the running job's live report (empty when the job does
	// not run): the tracker's pipeline, its answers' latency, every one
	// of its watchdog packets that passed its deadline in this run, the
	// swarm's size as it last said (absent when unknown) and its
	// up-to-date peer list, the first MaxTrackerPeers of PeersTotal.
	Protocol       string          `json:"protocol,omitempty"`
	Active         bool            `json:"active"`
	Failures       int             `json:"failures"`
	LastAnnounce   time.Time       `json:"last_announce,omitzero"`
	NextAnnounce   time.Time       `json:"next_announce,omitzero"`
	Interval       Duration        `json:"interval"`
	MinInterval    Duration        `json:"min_interval"`
	Seeders        *int64          `json:"seeders,omitempty"`
	Leechers       *int64          `json:"leechers,omitempty"`
	Latency        *TrackerLatency `json:"latency,omitempty"`
	OverduePackets int             `json:"overdue_packets"`
	PeersTotal     int             `json:"peers_total"`
	Peers          []string        `json:"peers,omitempty"`
}

// AddOptions are the choices of an added torrent.
type AddOptions struct {
	// Paused adds it without starting it.
	Paused bool
	// Limits, if not nil, replace the service's default seeding limits.
	Limits *Limits
	// Peers ("ip:port") are the torrent's own peers besides the service's
	// --peer, tried with its trackers' and the DHT's: a magnet's x.pe.
	Peers []string
}

// jobID is the short, stable id of a torrent: 12 hex digits of its
// info-hash.
func jobID(ih [20]byte) string { return hex.EncodeToString(ih[:6]) }

// Add parses a torrent and adds it to the registry. A bad torrent (or a
// file path that would escape the data directory) wraps ErrBadTorrent and
// nothing is written; a torrent already there is ErrExists with its info.
func (s *Service) Add(data []byte, opts AddOptions) (JobInfo, error) {
	if metainfo.IsMagnet(string(data)) {
		return s.addMagnet(strings.TrimSpace(string(data)), opts)
	}
	return s.addTorrent(data, opts, nil)
}

// addTorrent is Add for a torrent file; handover are a magnet's fetch
// connections for the job to start on (addTorrent owns them: the loop
// hands them to the job's start, or closes them if the job does not
// start at once: queued, paused, already there, or the service closing).
func (s *Service) addTorrent(data []byte, opts AddOptions, handover []peerwire.Handover) (JobInfo, error) {
	t, err := metainfo.Parse(data)
	if err != nil {
		closeHandover(handover)
		return JobInfo{}, fmt.Errorf("%w: %v", ErrBadTorrent, err)
	}
	var own []string
	for _, p := range opts.Peers {
		if _, err := netip.ParseAddrPort(p); err == nil {
			own = append(own, p)
		}
	}
	if _, dhtOn := s.eng.dht(); len(usableTiers(t)) == 0 && len(s.cfg.Peers) == 0 && len(own) == 0 && (!dhtOn || t.Info.Private) {
		closeHandover(handover)
		return JobInfo{}, fmt.Errorf("%w: it lists no usable tracker (http, https or udp), no peer was given, and the DHT is off (or the torrent is private), so there is nobody to download from: add a tracker or peers (--peer, or x.pe in a magnet), or start coord serve with the DHT", ErrBadTorrent)
	}
	limits := s.cfg.Limits
	if opts.Limits != nil {
		if err := opts.Limits.Validate(); err != nil {
			closeHandover(handover)
			return JobInfo{}, err
		}
		limits = *opts.Limits
	}
	id := jobID(t.InfoHash)
	var info JobInfo
	err2 := s.do(func() {
		if j, ok := s.jobs[id]; ok {
			info, err = s.info(j, time.Now()), ErrExists
			return
		}
		if err = atomicfile.WriteFile(torrentPath(s.cfg.StateDir, id), data); err != nil {
			return
		}
		rec := &record{ID: id, InfoHash: hex.EncodeToString(t.InfoHash[:]), Name: t.Info.Name,
			Added: time.Now().UTC(), Paused: opts.Paused, Limits: limits, Peers: own}
		j := newJob(rec, t)
		j.handover, handover = handover, nil // reconcile, next on the loop, starts on them or closes them
		s.jobs[id] = j
		s.listChanged.Store(true)
		s.save()
		info = s.info(j, time.Now())
	})
	closeHandover(handover) // nil when the job took them
	if err2 != nil {
		return JobInfo{}, err2
	}
	return info, err
}

// details returns every job's detail, oldest first; with maxPeers >= 0
// the running jobs' trackers report too, with up to maxPeers peers each
// (addTrackerReports), and their stores' figures are read.
func (s *Service) details(maxPeers int) ([]JobDetail, error) {
	var out []JobDetail
	var runs []runner
	err := s.do(func() {
		for _, j := range ordered(s.jobs) {
			out = append(out, s.detail(j))
			runs = append(runs, j.run)
		}
	})
	if err == nil && maxPeers >= 0 {
		liveFigures(out, runs, maxPeers)
	}
	return out, err
}

// liveReporters is how many jobs answer details' tracker reports at once.
const liveReporters = 8

// liveFigures adds the running jobs' tracker reports and store figures to
// their details, a few jobs at a time: each asks the job's goroutines.
func liveFigures(out []JobDetail, runs []runner, maxPeers int) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, liveReporters)
	for i, r := range runs {
		if r == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			addTrackerReports(&out[i], r, maxPeers)
			st := r.StoreStats()
			out[i].disk = &st
		}()
	}
	wg.Wait()
}

func timeSeconds(d Duration) float64 { return time.Duration(d).Seconds() }

// Get returns one job's detail.
func (s *Service) Get(id string) (JobDetail, error) {
	var d JobDetail
	var r runner
	err := s.withJob(id, func(j *job) error { d, r = s.detail(j), j.run; return nil })
	if errors.Is(err, ErrNotFound) {
		if derr := s.do(func() {
			if f, ok := s.fetching[id]; ok {
				d, err = JobDetail{JobInfo: f.info()}, nil
			}
		}); derr != nil {
			return d, derr
		}
	}
	if err == nil && r != nil {
		addTrackerReports(&d, r, MaxTrackerPeers)
	}
	return d, err
}

// Pause stops a job (trackers hear "stopped") and keeps it stopped until
// Resume.
func (s *Service) Pause(id string) (JobInfo, error) {
	return s.change(id, func(j *job) error { j.rec.Paused = true; return nil })
}

// Resume lets a paused job run again, and retries a failed one.
func (s *Service) Resume(id string) (JobInfo, error) {
	return s.change(id, func(j *job) error {
		j.rec.Paused, j.rec.Error = false, ""
		return nil
	})
}

// SetLimits replaces a job's seeding limits; a done job whose new limits
// are not reached seeds again.
func (s *Service) SetLimits(id string, l Limits) (JobInfo, error) {
	if err := l.Validate(); err != nil {
		return JobInfo{}, err
	}
	return s.change(id, func(j *job) error { j.rec.Limits = l; return nil })
}

// Remove closes a job and forgets it; with deleteData its files go too.
// It returns once the job is closed and removed.
func (s *Service) Remove(id string, deleteData bool) error {
	removed := make(chan error, 1)
	var fetch bool
	if err := s.do(func() { fetch = s.removeFetch(id) }); err != nil || fetch {
		return err // a magnet link being fetched: its fetch ends, nothing is on disk yet
	}
	err := s.withJob(id, func(j *job) error {
		j.removing = true
		s.listChanged.Store(true)
		j.deleteData = j.deleteData || deleteData
		j.onRemoved = append(j.onRemoved, removed)
		return nil
	})
	if err != nil {
		return err
	}
	select {
	case err := <-removed:
		return err
	case <-s.done:
		return ErrClosed
	}
}

// change applies f to a job's record, saves the state and returns the
// job's info.
func (s *Service) change(id string, f func(*job) error) (JobInfo, error) {
	var info JobInfo
	err := s.withJob(id, func(j *job) error {
		if err := f(j); err != nil {
			return err
		}
		s.listChanged.Store(true)
		s.save()
		s.reconcile()
		info = s.info(j, time.Now())
		return nil
	})
	return info, err
}

func (s *Service) withJob(id string, f func(*job) error) error {
	var err error
	if derr := s.do(func() {
		j, ok := s.jobs[id]
		if !ok || j.removing {
			err = fmt.Errorf("%w %q; list the jobs with GET /api/v1/torrents", ErrNotFound, id)
			return
		}
		err = f(j)
	}); derr != nil {
		return derr
	}
	return err
}

func (s *Service) info(j *job, now time.Time) JobInfo {
	r, st := j.snapshot(now), j.status
	in := JobInfo{ID: r.ID, Name: r.Name, InfoHash: r.InfoHash, State: j.state(), Error: r.Error,
		Size: j.t.Info.Length, BytesDone: r.BytesDone, Pieces: j.t.Info.NumPieces(), PiecesDone: r.PiecesDone,
		Downloaded: r.Downloaded, Uploaded: r.Uploaded, Ratio: j.ratio(),
		Added: r.Added, Completed: r.CompletedAt, Seeded: Duration(r.Seeded), Limits: r.Limits,
		DataDir: s.cfg.jobDir(r.ID)}
	if in.State == StateQueued {
		in.Waiting = j.waiting
	}
	if j.run != nil {
		in.DownRate, in.UpRate, in.Peers, in.Seeds = st.DownRate, st.UpRate, st.Peers, st.Seeds
	}
	if r.Complete {
		in.BytesDone, in.PiecesDone = in.Size, in.Pieces
	}
	if in.Size > 0 {
		in.Progress = float64(in.BytesDone) / float64(in.Size)
	}
	if in.State == StateDownloading && in.DownRate > 0 {
		in.ETA = Duration(time.Duration(float64(in.Size-in.BytesDone) / in.DownRate * float64(time.Second)).Round(time.Second))
	}
	return in
}

func (s *Service) detail(j *job) JobDetail {
	d := JobDetail{JobInfo: s.info(j, time.Now()), StorageWait: Duration(j.status.StorageWait),
		Files: []FileInfo{}, Workers: []WorkerInfo{}, Trackers: []TrackerInfo{}}
	info := j.t.Info
	for i, f := range info.Files {
		if f.IsPad() {
			continue
		}
		p := info.FilePath(i)
		d.Files = append(d.Files, FileInfo{Path: filepath.ToSlash(p), Length: f.Length})
	}
	for _, w := range j.status.Workers {
		d.Workers = append(d.Workers, WorkerInfo{Name: w.Name, State: string(w.State), Peers: w.Peers, Seeds: w.Seeds,
			DownRate: w.DownRate, UpRate: w.UpRate, Downloaded: w.Downloaded, Uploaded: w.Uploaded,
			Delivered: w.Delivered, Leased: w.Leased, HashFails: w.HashFails, Banned: w.Banned})
	}
	r := j.status.Returned
	d.LeaseReturns = LeaseReturns{Missed: r.Missed, Gone: r.Gone, BadPiece: r.BadPiece, Revoked: r.Revoked}
	eg := j.status.EndGame
	d.EndGame = EndGame{Duplicated: eg.Duplicated, DuplicatedBytes: eg.DuplicatedBytes, Cancelled: eg.Cancelled, Twice: eg.Twice}
	sort.SliceStable(d.Workers, func(a, b int) bool { return d.Workers[a].Name < d.Workers[b].Name })
	for tier, urls := range j.t.Tiers() {
		for _, u := range urls {
			ti := TrackerInfo{URL: u, Tier: tier, Usable: true}
			if err := metainfo.CheckTrackerURL(u); err != nil {
				ti.Usable, ti.LastError = false, err.Error()
			}
			if ts := j.trackers[u]; ts != nil {
				if ts.lastError != "" {
					ti.LastError, ti.ErrorAt = ts.lastError, ts.errorAt
				}
				ti.Overdue, ti.LastOverdue, ti.OverdueAt = ts.overdue, Duration(ts.lastOverdue), ts.overdueAt
			}
			d.Trackers = append(d.Trackers, ti)
		}
	}
	return d
}
