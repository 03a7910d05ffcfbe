package service

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/netip"
	"time"

	"flotilla/metadata"
	"flotilla/metainfo"
	"flotilla/tracker"
)

// StateFetchingMetadata is a magnet link's job while its torrent's info
// is fetched from peers (BEP 9); it becomes an ordinary job once it
// arrives.
const StateFetchingMetadata = "fetching metadata"

// magnetFetch is a magnet link being resolved; owned by the loop.
type magnetFetch struct {
	m   *metainfo.Magnet
	err string // why the fetch failed, "" while it runs
}

func (f *magnetFetch) info(id string) JobInfo {
	st := StateFetchingMetadata
	if f.err != "" {
		st = StateFailed
	}
	return JobInfo{ID: id, Name: f.m.Name, InfoHash: hex.EncodeToString(f.m.InfoHash[:]), State: st, Error: f.err}
}

// addMagnet starts fetching a magnet link's torrent; the job shows as
// "fetching metadata" until the info arrives, then it is added as if
// its .torrent had been (with opts), or "failed" with the reason.
func (s *Service) addMagnet(uri string, opts AddOptions) (JobInfo, error) {
	m, err := metainfo.ParseMagnet(uri)
	if err != nil {
		return JobInfo{}, fmt.Errorf("%w: %v", ErrBadTorrent, err)
	}
	var trackers [][]string
	for _, tr := range m.Trackers {
		if metainfo.CheckTrackerURL(tr) == nil {
			trackers = append(trackers, []string{tr})
		}
	}
	if len(trackers) == 0 && len(m.Peers) == 0 && len(s.cfg.Peers) == 0 {
		return JobInfo{}, fmt.Errorf("%w: the magnet link names no usable tracker and no peer (x.pe), so there is nobody to fetch its info from", ErrBadTorrent)
	}
	id := jobID(m.InfoHash)
	f := &magnetFetch{m: m}
	var info JobInfo
	err2 := s.do(func() {
		if j, ok := s.jobs[id]; ok {
			info, err = s.info(j, time.Now()), ErrExists
			return
		}
		if old, ok := s.fetching[id]; ok && old.err == "" {
			info, err = old.info(id), ErrExists
			return
		}
		if s.fetching == nil {
			s.fetching = map[string]*magnetFetch{}
		}
		s.fetching[id] = f
		s.listChanged.Store(true)
		info = f.info(id)
		s.fetches.Add(1)
		go s.fetchMagnet(id, f, trackers, opts)
	})
	if err2 != nil {
		return JobInfo{}, err2
	}
	return info, err
}

// fetchMagnet runs off the loop: it fetches the info, then adds the
// torrent (or records the failure) through the loop.
func (s *Service) fetchMagnet(id string, f *magnetFetch, trackers [][]string, opts AddOptions) {
	defer s.fetches.Done()
	ctx, cancel := context.WithCancel(context.Background())
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
	if len(trackers) > 0 {
		tc, err := tracker.New(tracker.DefaultConfig())
		if err == nil {
			defer tc.Close()
			params := tracker.AnnounceParams{PeerID: cfg.PeerID, Left: 1, NumWant: 50}
			cfg.Announce = func(ctx context.Context) []netip.AddrPort {
				var out []netip.AddrPort
				for _, r := range tc.ProbeTiers(ctx, f.m.InfoHash, trackers, params) {
					if r.Response != nil {
						for _, p := range r.Response.Peers {
							out = append(out, p.Addr)
						}
					}
				}
				return out
			}
		}
	}
	t, err := metadata.Fetch(ctx, f.m, cfg)
	if err == nil {
		_, err = s.Add(t.Encode(), opts)
	}
	s.do(func() {
		if err != nil {
			f.err = err.Error()
		} else {
			delete(s.fetching, id)
		}
		s.listChanged.Store(true)
	})
}
