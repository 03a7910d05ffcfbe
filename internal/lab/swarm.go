package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"time"
)

// SwarmConfig describes a swarm: one opentracker and N aria2c seeders of
// one generated payload.
type SwarmConfig struct {
	// Dir is the lab's working directory (payload, torrent, tracker chroot,
	// logs). Required; created if missing.
	Dir string
	// Payload is the content to seed.
	Payload PayloadSpec
	// PieceLength of the torrent, a power of two >= 16 KiB.
	PieceLength int64
	// Seeders is the number of aria2c seeders (>= 1), each on its own host.
	Seeders int
	// RegisterTimeout bounds the wait until every seeder has checked the
	// data and announced itself; 0 means 60 s plus 1 s per 50 MB.
	RegisterTimeout time.Duration
	// SeederUploadLimit, if non-empty, caps each seeder's upload rate
	// (aria2c --max-upload-limit syntax, e.g. "5M" for 5 MiB/s); the demo
	// uses it so that a download lasts long enough to watch.
	SeederUploadLimit string
	// Logger receives progress lines; nil discards them.
	Logger *slog.Logger
}

// DefaultSwarmConfig is a 64 MiB single-file payload, 1 MiB pieces and 3
// seeders; Dir must still be set.
func DefaultSwarmConfig() SwarmConfig {
	return SwarmConfig{
		Payload:     PayloadSpec{Name: "flotilla-lab.bin", Seed: 1, Size: 64 << 20},
		PieceLength: 1 << 20,
		Seeders:     3,
	}
}

// Validate checks the configuration.
func (c SwarmConfig) Validate() error {
	if c.Dir == "" {
		return errors.New("lab: swarm needs a Dir")
	}
	if c.Seeders < 1 {
		return fmt.Errorf("lab: swarm needs at least one seeder, got %d", c.Seeders)
	}
	if c.PieceLength < 16<<10 || c.PieceLength&(c.PieceLength-1) != 0 {
		return fmt.Errorf("lab: piece length %d is not a power of two >= 16 KiB", c.PieceLength)
	}
	return c.Payload.Validate()
}

// Swarm is a running swarm.
type Swarm struct {
	Payload     *Payload
	Torrent     *Torrent
	Tracker     *Opentracker
	Seeders     []*Proc
	SeederAddrs []string // host:port of each seeder
	Dir         string
}

// StartLoopbackSwarm builds the swarm on loopback: the tracker on
// 127.0.0.1, seeder i on 127.0.0.(2+i). See StartSwarm.
func StartLoopbackSwarm(ctx context.Context, cl *Cleanup, cfg SwarmConfig) (*Swarm, error) {
	return StartSwarm(ctx, cl, cfg, Loopback("127.0.0.1"), LoopbackHosts(2, cfg.Seeders))
}

// StartSwarm writes the payload and its torrent (announcing to the
// tracker's HTTP URL), starts opentracker on trackerHost and one aria2c
// seeder on each of seederHosts (len must be cfg.Seeders), and returns
// once the tracker's scrape reports every seeder complete. Everything it
// starts is stopped by cl, also when it fails.
func StartSwarm(ctx context.Context, cl *Cleanup, cfg SwarmConfig, trackerHost Host, seederHosts []Host) (*Swarm, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(seederHosts) != cfg.Seeders {
		return nil, fmt.Errorf("lab: %d seeder hosts for %d seeders", len(seederHosts), cfg.Seeders)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	s := &Swarm{Dir: dir}

	start := time.Now()
	s.Payload, err = WritePayload(filepath.Join(dir, "data"), cfg.Payload)
	if err != nil {
		return nil, err
	}
	log.Info("payload written", "path", s.Payload.Path, "bytes", s.Payload.Total, "took", time.Since(start).Round(time.Millisecond))

	if err := s.startTracker(ctx, cl, cfg, trackerHost, log); err != nil {
		return nil, err
	}
	start = time.Now()
	if err := s.startSeeders(ctx, cl, cfg, seederHosts); err != nil {
		return nil, err
	}
	log.Info("seeders registered", "seeders", s.SeederAddrs, "took", time.Since(start).Round(time.Millisecond))
	return s, nil
}

// startTracker makes the torrent of s.Payload and starts the tracker on
// trackerHost, with the torrent naming it.
func (s *Swarm) startTracker(ctx context.Context, cl *Cleanup, cfg SwarmConfig, trackerHost Host, log *slog.Logger) error {
	dir := s.Dir
	// The torrent must name the tracker's URL (its port is only known once
	// it runs) and the tracker must whitelist the torrent's info-hash. The
	// info-hash does not depend on the announce URL: make the torrent with a
	// provisional URL, start the tracker with its hash, then put the real
	// URL in (the info dictionary's bytes are kept exactly).
	start := time.Now()
	provisional := [][]string{{"http://" + trackerHost.IP() + ":1/announce"}}
	torrentPath := filepath.Join(dir, cfg.Payload.Name+".torrent")
	t0, err := MakeTorrent(ctx, s.Payload, cfg.PieceLength, provisional, torrentPath)
	if err != nil {
		return err
	}
	s.Tracker, err = StartOpentracker(ctx, cl, trackerHost, filepath.Join(dir, "tracker"), t0.InfoHash)
	if err != nil {
		return err
	}
	if err := SetTrackers(torrentPath, [][]string{{s.Tracker.HTTPAnnounce}}); err != nil {
		return err
	}
	s.Torrent = &Torrent{Path: torrentPath, Name: t0.Name, InfoHash: t0.InfoHash,
		PieceLength: cfg.PieceLength, Tiers: [][]string{{s.Tracker.HTTPAnnounce}}}
	log.Info("torrent made", "path", torrentPath, "infohash", fmt.Sprintf("%x", t0.InfoHash),
		"tracker", s.Tracker.HTTPAnnounce, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// startSeeders starts an aria2c seeder on each host and waits until the
// tracker counts them all complete.
func (s *Swarm) startSeeders(ctx context.Context, cl *Cleanup, cfg SwarmConfig, seederHosts []Host) error {
	dir, torrentPath := s.Dir, s.Torrent.Path
	for _, h := range seederHosts {
		port, err := h.FreePort()
		if err != nil {
			return err
		}
		args := Aria2SeedArgs(h.IP(), port, filepath.Join(dir, "data"), torrentPath)
		if cfg.SeederUploadLimit != "" {
			args = append(args, "--max-upload-limit="+cfg.SeederUploadLimit)
		}
		cmd := h.Command(ctx, "aria2c", args...)
		cmd.Dir = dir
		p, err := StartProc(cl, "seeder-"+h.IP(), cmd, filepath.Join(dir, "logs", "seeder-"+h.IP()+".log"))
		if err != nil {
			return err
		}
		s.Seeders = append(s.Seeders, p)
		s.SeederAddrs = append(s.SeederAddrs, net.JoinHostPort(h.IP(), strconv.Itoa(port)))
	}
	timeout := cfg.RegisterTimeout
	if timeout == 0 {
		timeout = 60*time.Second + time.Duration(s.Payload.Total/50e6)*time.Second
	}
	var last ScrapeResult
	err := Poll(ctx, timeout, 100*time.Millisecond, func() (bool, error) {
		for _, p := range s.Seeders {
			if p.Exited() {
				return false, p.exitedErr()
			}
		}
		r, err := s.Tracker.ScrapeInfo(ctx, s.Torrent.InfoHash)
		if err != nil {
			return false, nil // transient; the deadline bounds it
		}
		last = r
		return r.Complete >= int64(cfg.Seeders), nil
	})
	if err != nil {
		return fmt.Errorf("lab: waiting for %d seeders to register (tracker says %d complete): %w", cfg.Seeders, last.Complete, err)
	}
	return nil
}
