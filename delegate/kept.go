package delegate

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"flotilla/internal/bitfield"
	"flotilla/swarm"
)

// Keeping pieces across sessions.
//
// When a session is lost (the coordinator died or restarted; not a Stop
// or a Cancel), the job's default worker does not throw its pieces away:
//
//   - it gives back every leased piece it has not started and, for up to
//     keepGrace, finishes the pieces it was downloading;
//   - it keeps, in kept-<infohash>.part (its job file, pieces at their
//     torrent offsets) and kept-<infohash>.bits (which of them), every
//     piece it holds that the coordinator has not confirmed as stored
//     (Have): pieces shipped but lost with the coordinator, pieces not yet
//     shipped, and pieces finished in the grace period.
//
// The next job for the same torrent (usually from the restarted
// coordinator) adopts those files: each kept piece is re-hashed (a
// damaged one is dropped) and shipped to the coordinator at once, unasked
// (the coordinator takes any piece it lacks, after its own re-hash). A job
// that starts while another still keeps waits for it, at most keepGrace
// plus a little.

// keepGrace bounds how long a lost session's swarm finishes its pieces.
const keepGrace = 5 * time.Second

// keptMagic starts a .bits file: the torrent's info-hash and the bitfield
// follow.
const keptMagic = "FLOTKEPT1\n"

func keptPaths(dir string, ih [20]byte) (part, bits string) {
	base := filepath.Join(dir, fmt.Sprintf("kept-%x", ih))
	return base + ".part", base + ".bits"
}

// keepers tracks the torrents whose pieces are being kept, so that a job
// for one of them waits until the files are written.
type keepers struct {
	mu sync.Mutex
	m  map[[20]byte]chan struct{}
}

// begin marks ih as being kept; the returned function ends it.
func (k *keepers) begin(ih [20]byte) func() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = map[[20]byte]chan struct{}{}
	}
	prev := k.m[ih]
	ch := make(chan struct{})
	k.m[ih] = ch
	return func() {
		if prev != nil {
			<-prev
		}
		k.mu.Lock()
		if k.m[ih] == ch {
			delete(k.m, ih)
		}
		k.mu.Unlock()
		close(ch)
	}
}

// wait waits until no job keeps ih, or timeout.
func (k *keepers) wait(ih [20]byte, timeout time.Duration) {
	k.mu.Lock()
	ch := k.m[ih]
	k.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case <-ch:
	case <-time.After(timeout):
	}
}

// keeper is a worker that can keep its pieces for the next session
// instead of closing empty-handed.
type keeper interface {
	Keep(ctx context.Context, grace time.Duration)
}

// adoptKept takes over the kept files of torrent ih as the job file at
// path and returns the pieces they list (not yet verified). No kept
// files: nil, nil.
func adoptKept(dir string, ih [20]byte, numPieces int, path string) ([]int, error) {
	part, bitsPath := keptPaths(dir, ih)
	b, err := os.ReadFile(bitsPath)
	if errors.Is(err, os.ErrNotExist) {
		os.Remove(part) // data without its list: useless
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	os.Remove(bitsPath)
	want := len(keptMagic) + 20 + bitfield.Len(numPieces)
	if len(b) != want || string(b[:len(keptMagic)]) != keptMagic || !bytes.Equal(b[len(keptMagic):len(keptMagic)+20], ih[:]) {
		os.Remove(part)
		return nil, fmt.Errorf("delegate: %s is not a kept-pieces list for this torrent; ignored", bitsPath)
	}
	if err := os.Rename(part, path); err != nil {
		return nil, err
	}
	have := bitfield.Bitfield(b[len(keptMagic)+20:])
	var ps []int
	for p := range numPieces {
		if have.Has(p) {
			ps = append(ps, p)
		}
	}
	return ps, nil
}

// keep makes the store's unconfirmed pieces survive it: the data is
// synced, the job file becomes kept-<ih>.part and the list is written
// (synced, then renamed into place). It reports how many pieces it kept.
// With nothing to keep it closes and removes the file as Close does.
func (s *nodeStore) keep(ih [20]byte) (int, error) {
	s.mu.Lock()
	bits := s.have.Clone()
	for i := range bits {
		bits[i] &^= s.confirmed[i]
	}
	s.mu.Unlock()
	n := bits.Count()
	if n == 0 {
		return 0, s.Close()
	}
	dir := filepath.Dir(s.path)
	part, bitsPath := keptPaths(dir, ih)
	s.closeDirect() // the Sync below covers what went through it too
	err := s.f.Sync()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(s.path, part)
	}
	if err == nil {
		err = writeSynced(bitsPath+".tmp", append(append([]byte(keptMagic), ih[:]...), bits...))
	}
	if err == nil {
		err = os.Rename(bitsPath+".tmp", bitsPath)
	}
	if err != nil {
		os.Remove(s.path)
		os.Remove(part)
		os.Remove(bitsPath + ".tmp")
		return 0, fmt.Errorf("delegate: keep %d pieces in %s: %w", n, dir, diskFull(err, dir))
	}
	return n, nil
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// shipKept re-hashes the kept pieces adopted at the job's start and hands
// the good ones to the session as pieces, one at a time (the session's
// shippers bound the memory). A damaged one is dropped. It runs on the
// pump goroutine before the swarm's events; it reports false if the
// worker was closed meanwhile.
func (w *localWorker) shipKept(log *slog.Logger) bool {
	for _, p := range w.kept {
		data := make([]byte, w.store.info.PieceLen(p))
		if _, err := w.store.f.ReadAt(data, w.store.info.PieceOffset(p)); err != nil || sha1.Sum(data) != w.store.info.PieceHash(p) {
			log.Warn("dropped a damaged kept piece", "piece", p, "err", err)
			continue
		}
		log.Debug("shipping a kept piece", "piece", p) // matched by internal/clustertest
		w.store.setHave(p)
		w.ls.Have([]int{p})
		w.mu.Lock()
		w.keptOut[p] = true
		w.mu.Unlock()
		select {
		case w.events <- swarm.WorkerEvent{Kind: swarm.EventPiece, Piece: p, Data: data}:
			w.nKept++
		case <-w.quit:
			return false
		case <-w.detached:
			return true
		}
	}
	if len(w.kept) > 0 {
		log.Info("shipped kept pieces", "kept", len(w.kept), "good", w.nKept)
	}
	w.kept = nil
	return true
}

// Keep implements keeper: the session is lost; finish the pieces in
// flight for up to grace (less if ctx ends: the node is shutting down),
// then keep every piece the coordinator has not confirmed for the next
// job of this torrent.
func (w *localWorker) Keep(ctx context.Context, grace time.Duration) {
	w.once.Do(func() {
		done := w.keepers.begin(w.ih)
		defer done()
		close(w.detached)
		w.ls.Revoke(allPieceIndices(w.store.info.NumPieces()), false) // unstarted pieces back; started ones are finished
		t := time.NewTicker(50 * time.Millisecond)
		deadline := time.NewTimer(grace)
		// The pump takes revoked and finished pieces off the lease (not
		// the swarm's Status, which may predate the last Assign).
		for w.inFlight() > 0 {
			select {
			case <-t.C:
				continue
			case <-deadline.C:
			case <-ctx.Done():
			}
			break
		}
		t.Stop()
		deadline.Stop()
		close(w.quit)
		w.ls.Close()
		<-w.done
		kept, err := w.store.keep(w.ih)
		switch {
		case err != nil:
			w.log.Warn("cannot keep pieces for the next session", "err", err)
		case kept > 0:
			w.log.Info("session lost; kept pieces for the next session", "pieces", kept)
		}
	})
}

// keepJobs is endJobs for a lost session: each job's worker keeps its
// pieces if it can.
func (ns *nodeSession) keepJobs() {
	for _, j := range ns.jobs {
		j.keep = true
	}
	ns.endJobs()
}

// closeWorker closes a job's worker, or has it keep its pieces when the
// session was lost. A worker that failed (a full disk) keeps nothing: the
// coordinator, told so, already took its lease back.
func (j *nodeJob) closeWorker() {
	if k, ok := j.w.(keeper); ok && j.keep && !j.failed.Load() {
		k.Keep(j.ns.srv.ctx, keepGrace)
		return
	}
	j.w.Close()
}
