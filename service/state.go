package service

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"time"

	"flotilla/internal/atomicfile"
)

// record is a job as the state file keeps it: what was asked for and the
// figures that must survive a restart. It is owned by Service.run.
type record struct {
	ID       string    `json:"id"`
	InfoHash string    `json:"info_hash"`
	Name     string    `json:"name"`
	Added    time.Time `json:"added"`
	// Paused is the user's pause; Complete is set once every piece was
	// verified and written.
	Paused   bool `json:"paused,omitempty"`
	Complete bool `json:"complete,omitempty"`
	// CompletedAt is when the download completed (zero: not yet).
	CompletedAt time.Time `json:"completed_at,omitzero"`
	// Error is why the job failed ("" while it has not).
	Error string `json:"error,omitempty"`
	// Limits are the job's seeding limits.
	Limits Limits `json:"limits"`
	// Uploaded and Downloaded are the payload bytes of the job's earlier
	// runs; Seeded is how long it seeded in them.
	Uploaded   int64         `json:"uploaded"`
	Downloaded int64         `json:"downloaded"`
	Seeded     time.Duration `json:"seeded_ns"`
	// BytesDone and PiecesDone are what the store held when last seen.
	BytesDone  int64 `json:"bytes_done"`
	PiecesDone int   `json:"pieces_done"`
	// Peers are the job's own peers besides the service's --peer: a
	// magnet's x.pe ("ip:port"), which may be the only source it has.
	Peers []string `json:"peers,omitempty"`
}

// peers are the record's own peers that parse as ip:port.
func (r *record) peers() []netip.AddrPort {
	var out []netip.AddrPort
	for _, p := range r.Peers {
		if ap, err := netip.ParseAddrPort(p); err == nil {
			out = append(out, ap)
		}
	}
	return out
}

// Limits say how long a completed job seeds.
type Limits struct {
	// Seed keeps a completed job serving uploads; false: done at completion.
	Seed bool `json:"seed"`
	// Ratio stops seeding once uploaded/size reaches it; 0: no ratio limit.
	Ratio float64 `json:"seed_ratio"`
	// Time stops seeding after this much seeding; 0: no time limit.
	Time Duration `json:"seed_time"`
}

var errLimits = errors.New("invalid seeding limits")

// Validate reports a limit that cannot work.
func (l Limits) Validate() error {
	switch {
	case !(l.Ratio >= 0):
		return fmt.Errorf("%w: seed_ratio %v is negative; give 0 for no ratio limit", errLimits, l.Ratio)
	case l.Time < 0:
		return fmt.Errorf("%w: seed_time %v is negative; give 0 for no time limit", errLimits, time.Duration(l.Time))
	}
	return nil
}

// Duration is a time.Duration that JSON carries as a string ("1h30m").
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"90m\" or \"2h\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// stateFile is jobs.json.
type stateFile struct {
	Version int       `json:"version"`
	Jobs    []*record `json:"jobs"`
	// Magnets are the magnet links whose info is being fetched (or whose
	// fetch failed), resumed at start (magnet.go).
	Magnets []magnetRecord `json:"magnets,omitempty"`
}

const stateVersion = 1

func jobsPath(stateDir string) string { return filepath.Join(stateDir, "jobs.json") }

func torrentPath(stateDir, id string) string {
	return filepath.Join(stateDir, "torrents", id+".torrent")
}

// loadState reads jobs.json; a missing file is an empty registry.
func loadState(stateDir string) (stateFile, error) {
	var sf stateFile
	b, err := os.ReadFile(jobsPath(stateDir))
	if errors.Is(err, os.ErrNotExist) {
		return sf, nil
	}
	if err != nil {
		return sf, err
	}
	if err := json.Unmarshal(b, &sf); err != nil {
		return sf, fmt.Errorf("%s is damaged (%v); move it away to start with no jobs", jobsPath(stateDir), err)
	}
	if sf.Version != stateVersion {
		return sf, fmt.Errorf("%s has version %d, this coord reads %d", jobsPath(stateDir), sf.Version, stateVersion)
	}
	return sf, nil
}

// saveState writes every record to jobs.json atomically, oldest first.
func saveState(stateDir string, recs []*record, magnets []magnetRecord) error {
	sort.Slice(recs, func(i, j int) bool { return recs[i].Added.Before(recs[j].Added) })
	sort.Slice(magnets, func(i, j int) bool { return magnets[i].Added.Before(magnets[j].Added) })
	b, err := json.MarshalIndent(stateFile{Version: stateVersion, Jobs: recs, Magnets: magnets}, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(jobsPath(stateDir), append(b, '\n'))
}
