package service

import (
	"context"
	"net/http"

	"flotilla/swarm"
)

// PieceMap says which swarm delivered each piece of a job, for the
// dashboard's piece map.
type PieceMap struct {
	// Pieces is the torrent's piece count.
	Pieces int `json:"pieces"`
	// Names are the sources: "disk" (pieces on disk when the run began),
	// "local" (this daemon's peers) and the swarm nodes.
	Names []string `json:"names"`
	// Sources holds one byte per piece (base64 in JSON): an index into
	// Names, or 255 for a piece not delivered yet.
	Sources []byte `json:"sources"`
	// Running is false when the job does not run: the map is then its
	// last run's, as that run ended (or, before any run ended in this
	// process, all "disk"'s for a complete job, all 255 for another).
	Running bool `json:"running"`
}

// Pieces returns job id's piece map. The running job's sub-chief makes
// it (outside the service's loop).
func (s *Service) Pieces(id string) (PieceMap, error) {
	var r runner
	var m PieceMap
	var last *swarm.PieceSources
	complete := false
	err := s.withJob(id, func(j *job) error {
		r, m.Pieces, complete, last = j.run, j.t.Info.NumPieces(), j.rec.Complete, j.lastSources
		return nil
	})
	if err != nil {
		return PieceMap{}, err
	}
	if r != nil {
		ctx, cancel := context.WithTimeout(context.Background(), trackerReportTimeout)
		defer cancel()
		if ps, err := r.PieceSources(ctx); err == nil && len(ps.Pieces) == m.Pieces {
			m.Names, m.Sources, m.Running = ps.Names, ps.Pieces, true
			return m, nil
		}
	}
	if last != nil && len(last.Pieces) == m.Pieces {
		m.Names, m.Sources = last.Names, last.Pieces
		return m, nil
	}
	m.Names, m.Sources = []string{swarm.SourceDisk}, make([]byte, m.Pieces)
	if !complete {
		for i := range m.Sources {
			m.Sources[i] = swarm.SourceNone
		}
	}
	return m, nil
}

func (h *apiHandler) pieces(w http.ResponseWriter, r *http.Request) {
	m, err := h.s.Pieces(r.PathValue("id"))
	if err != nil {
		writeServiceError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

// lastSources asks a run about to close who delivered each piece; nil if
// it cannot say.
func lastSources(r runner) *swarm.PieceSources {
	ctx, cancel := context.WithTimeout(context.Background(), trackerReportTimeout)
	defer cancel()
	ps, err := r.PieceSources(ctx)
	if err != nil {
		return nil
	}
	return &ps
}
