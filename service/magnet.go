package service

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"flotilla/metadata"
	"flotilla/metainfo"
	"flotilla/peerwire"
	"flotilla/tracker"
)

// StateFetchingMetadata is a magnet link's job while its torrent's info
// is fetched from peers (BEP 9); it becomes an ordinary job once it
// arrives.
const StateFetchingMetadata = "fetching metadata"

// magnetFetch is a magnet link being resolved; owned by the loop. It is
// kept in the state file (magnetRecord) from the moment it is added, so
// that a restart resumes the fetch.
type magnetFetch struct {
	m      *metainfo.Magnet
	rec    magnetRecord
	cancel context.CancelFunc // ends the fetch (Remove); nil while none runs
}

// magnetRecord is a magnet link as the state file keeps it.
type magnetRecord struct {
	ID     string    `json:"id"`
	URI    string    `json:"uri"`
	Added  time.Time `json:"added"`
	Paused bool      `json:"paused,omitempty"`
	Limits *Limits   `json:"limits,omitempty"`
	// Error is why the fetch failed ("" while it runs).
	Error string `json:"error,omitempty"`
}

func (f *magnetFetch) info() JobInfo {
	st := StateFetchingMetadata
	if f.rec.Error != "" {
		st = StateFailed
	}
	return JobInfo{ID: f.rec.ID, Name: f.m.Name, InfoHash: hex.EncodeToString(f.m.InfoHash[:]), State: st,
		Error: f.rec.Error, Added: f.rec.Added}
}

func (f *magnetFetch) opts() AddOptions {
	return AddOptions{Paused: f.rec.Paused, Limits: f.rec.Limits, Peers: f.m.Peers}
}

// trackers are the magnet's usable tracker URLs, one tier each.
func (f *magnetFetch) trackers() [][]string {
	var out [][]string
	for _, tr := range f.m.Trackers {
		if metainfo.CheckTrackerURL(tr) == nil {
			out = append(out, []string{tr})
		}
	}
	return out
}

// addMagnet starts fetching a magnet link's torrent; the job shows as
// "fetching metadata" until the info arrives, then it is added as if
// its .torrent had been (with opts), or "failed" with the reason.
func (s *Service) addMagnet(uri string, opts AddOptions) (JobInfo, error) {
	m, err := metainfo.ParseMagnet(uri)
	if err != nil {
		return JobInfo{}, fmt.Errorf("%w: %v", ErrBadTorrent, err)
	}
	if opts.Limits != nil {
		if err := opts.Limits.Validate(); err != nil {
			return JobInfo{}, err
		}
	}
	id := jobID(m.InfoHash)
	f := &magnetFetch{m: m, rec: magnetRecord{ID: id, URI: uri, Added: time.Now().UTC(), Paused: opts.Paused, Limits: opts.Limits}}
	if _, dhtOn := s.eng.dht(); len(f.trackers()) == 0 && len(m.Peers) == 0 && len(s.cfg.Peers) == 0 && !dhtOn {
		return JobInfo{}, fmt.Errorf("%w: the magnet link names no usable tracker and no peer (x.pe), and the DHT is off, so there is nobody to fetch its info from", ErrBadTorrent)
	}
	var info JobInfo
	err2 := s.do(func() {
		if j, ok := s.jobs[id]; ok {
			info, err = s.info(j, time.Now()), ErrExists
			return
		}
		if old, ok := s.fetching[id]; ok && old.rec.Error == "" {
			info, err = old.info(), ErrExists
			return
		}
		if old, ok := s.fetching[id]; ok && old.cancel != nil {
			old.cancel()
		}
		s.startFetch(f)
		s.save() // a restart resumes the fetch
		info = f.info()
	})
	if err2 != nil {
		return JobInfo{}, err2
	}
	return info, err
}

// startFetch registers f and starts its fetch; on the loop.
func (s *Service) startFetch(f *magnetFetch) {
	if s.fetching == nil {
		s.fetching = map[string]*magnetFetch{}
	}
	s.fetching[f.rec.ID] = f
	s.listChanged.Store(true)
	if f.rec.Error != "" {
		return // failed before a restart: shown as failed until removed or added again
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	s.fetches.Add(1)
	go s.fetchMagnet(ctx, f)
}

// removeFetch forgets a magnet link being fetched (Remove); on the loop.
func (s *Service) removeFetch(id string) bool {
	f, ok := s.fetching[id]
	if !ok {
		return false
	}
	if f.cancel != nil {
		f.cancel()
	}
	delete(s.fetching, id)
	s.listChanged.Store(true)
	s.save()
	return true
}

// fetchMagnet runs off the loop: it fetches the info, then adds the
// torrent (or records the failure) through the loop. A fetch ended by
// the service's shutdown stays "fetching metadata" in the state file and
// resumes at the next start; one ended by Remove is forgotten.
func (s *Service) fetchMagnet(ctx context.Context, f *magnetFetch) {
	defer s.fetches.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	cfg := metadata.DefaultConfig()
	cfg.PeerID, cfg.Peers, cfg.Logger = tracker.NewPeerID(), s.cfg.Peers, s.log
	var tc *tracker.Client
	trackers := f.trackers()
	if len(trackers) > 0 {
		var err error
		if tc, err = tracker.New(tracker.DefaultConfig()); err == nil {
			defer tc.Close()
		}
	}
	params := tracker.AnnounceParams{PeerID: cfg.PeerID, Left: 1, NumWant: 50}
	if _, dhtOn := s.eng.dht(); tc == nil && !dhtOn {
		cfg.Announce = nil // only the magnet's and --peer's peers: the fetch ends when they fail
	} else {
		cfg.Announce = s.magnetPeers(f, tc, trackers, params)
	}
	// The peers' connections stay open for the job (FetchKeep): it
	// starts on them instead of reconnecting and waiting for their
	// handshakes again. addTorrent owns them from the call on; they are
	// closed if the job does not start at once.
	t, conns, err := metadata.FetchKeep(ctx, f.m, cfg)
	if ctx.Err() != nil {
		closeHandover(conns)
		return // shutdown (resumes at the next start) or Remove
	}
	if err == nil {
		if _, err = s.addTorrent(t.Encode(), f.opts(), conns); errors.Is(err, ErrExists) {
			err = nil // added meanwhile as a .torrent
		}
	} else {
		closeHandover(conns)
	}
	if errors.Is(err, ErrClosed) {
		return
	}
	s.do(func() {
		if s.fetching[f.rec.ID] != f {
			return // removed, or added again, meanwhile
		}
		f.cancel = nil
		if err != nil {
			f.rec.Error = err.Error()
		} else {
			delete(s.fetching, f.rec.ID)
		}
		s.listChanged.Store(true)
		s.save()
	})
}

// magnetPeers is a magnet fetch's source of peers: its trackers' (tc nil
// without any) and the DHT's (a magnet's info cannot say whether the
// torrent is private).
func (s *Service) magnetPeers(f *magnetFetch, tc *tracker.Client, trackers [][]string, params tracker.AnnounceParams) func(context.Context) []netip.AddrPort {
	return func(ctx context.Context) []netip.AddrPort {
		var out []netip.AddrPort
		if tc != nil {
			for _, r := range tc.ProbeTiers(ctx, f.m.InfoHash, trackers, params) {
				if r.Response != nil {
					for _, p := range r.Response.Peers {
						out = append(out, p.Addr)
					}
				}
			}
		}
		peers, _ := s.eng.dhtPeers(ctx, f.m.InfoHash)
		return append(out, peers...)
	}
}

// closeHandover closes a metadata fetch's connections that no job took.
func closeHandover(hs []peerwire.Handover) {
	for _, h := range hs {
		h.Conn.Close()
	}
}
