package clustertest

import (
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"flotilla/internal/lab"
	"flotilla/metainfo"
)

// killSeedEnv replays a kill matrix with the seed a failure printed (as
// cmd/coord's TestKillMatrix).
const killSeedEnv = "FLOTILLA_KILL_SEED"

// killSeed is the matrix's seed: from FLOTILLA_KILL_SEED, else the clock.
// It is logged first, and again if the test fails.
func killSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(killSeedEnv); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", killSeedEnv, v, err)
		}
	}
	t.Logf("kill seed %d (replay: %s=%d go test -run '^%s$' ./internal/clustertest/)", seed, killSeedEnv, seed, t.Name())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("FAILED with kill seed %d: replay with %s=%d", seed, killSeedEnv, seed)
		}
	})
	return seed
}

// nodeKill is what one kill of the node cost.
type nodeKill struct {
	at       string // the coordinator's progress when it landed
	what     string
	jobs     int   // jobs the killed process had started
	returned int   // pieces of its lease the coordinator returned to the pool
	held     []int // verified pieces in its job file (it had downloaded them)
	lost     []int // of them, pieces the coordinator had not received: fetched again later
	orphan   int64 // bytes its job files hold on disk after the kill
}

// TestClusterNodeKillMatrix (issue 8, faults): kill -9 the swarm node at
// 10 seeded random points spread over one download, starting it again
// (same name, host and --data) 0-2 s after each kill so that it rejoins.
// Kill k lands once the coordinator's progress passes a random point in
// the k-th tenth of 0-90%, then either in full flow (once the coordinator
// accepted the node's next piece, then a random 0-1.5 s) or a random
// 0-1.5 s on, whatever the node is doing (a node restarted moments before
// is still joining or starting its job). The coordinator runs throughout
// and must finish byte-identical.
//
// Counted from the coordinator's -v log: every piece is accepted exactly
// once (a verified piece is never taken twice), and a piece delivered
// after the coordinator verified it ("piece dropped: verified already")
// is allowed only as an end-game duplicate, up to the pieces the
// sub-chief duplicated to that worker: anything more is a verified piece
// downloaded again. Pieces the node had downloaded but not yet shipped
// when killed (found by hashing its job file) are lost with it and
// fetched again: counted and logged, not failed, as is its lease
// returned to the pool. The job files a kill leaves are removed when the
// node starts again (checked), and none is left at the end.
func TestClusterNodeKillMatrix(t *testing.T) {
	const kills = 10
	seed := killSeed(t)
	rng := rand.New(rand.NewPCG(seed, 2))
	// At 8 Mbit/s per host the coordinator and the node fetch ~2 MB/s
	// together: 96 MiB leaves room for 10 kill-restart cycles.
	e := newEnv(t, envConfig{hosts: []string{"coord", "node1"}, rateMbit: 8,
		payload: multiFile("nodekill", 96<<20), piece: piece, timeout: 4 * time.Minute})
	tor, err := metainfo.Load(e.sw.Torrent.Path)
	if err != nil {
		t.Fatal(err)
	}
	n := tor.Info.NumPieces()
	dir := e.nodeDataDir("node1")
	coord := e.startCoord("coord")
	node := e.startNodeLog("node1", e.keyFile, "node1-0")
	gone0 := 0 // lease returns for node1 before this run of it
	var done []nodeKill
	for k := range kills {
		// Kill k lands in the k-th tenth of 0-90% of the download: once
		// the coordinator shows target, and then either in full flow (the
		// node's next piece accepted, then 0-1.5 s) or 0-1.5 s later
		// whatever the node is doing (starting, joining, downloading).
		target := 90 * (float64(k) + rng.Float64()) / kills
		flow := rng.IntN(2) > 0
		delay := time.Duration(rng.IntN(1500)) * time.Millisecond
		down := time.Duration(rng.IntN(2000)) * time.Millisecond // before it starts again
		if _, err := lab.WaitLine(e.ctx, coord, 2*time.Minute, lab.AtPercent(target)); err != nil {
			if errors.Is(err, lab.ErrExited) {
				t.Logf("the download finished before kill %d", k)
				break
			}
			t.Fatalf("kill %d: the coordinator never reached %.1f%%: %v", k, target, err)
		}
		what := fmt.Sprintf("%4dms after that", delay.Milliseconds())
		if flow {
			what = fmt.Sprintf("%4dms after its next piece", delay.Milliseconds())
			before := len(linesMatching(coord, `msg="piece accepted"`, " worker=node1 "))
			seen := 0
			_, err := lab.WaitLine(e.ctx, coord, 90*time.Second, func(l string) bool {
				if strings.Contains(l, `msg="piece accepted"`) && strings.Contains(l, " worker=node1 ") {
					seen++
				}
				return seen > before
			})
			if errors.Is(err, lab.ErrExited) {
				t.Logf("the download finished before kill %d", k)
				break
			}
			if err != nil {
				t.Fatalf("kill %d: the coordinator accepted no piece from the node: %v; node log ends: %s", k, err, node.Tail(800))
			}
		}
		time.Sleep(delay) // the kill point
		if coord.Exited() {
			t.Logf("the download finished before kill %d", k)
			break
		}
		at := lastProgress(coord)
		node.Kill()
		r := e.afterNodeKill(tor, coord, node, dir, gone0)
		r.at, r.what = at, fmt.Sprintf("target %4.1f%%, %s", target, what)
		done = append(done, r)
		t.Logf("kill %d at %6s (%s): %d job(s); lease returned %d pieces; it held %d verified pieces, %d of them not yet at the coordinator (lost); %.1f MiB left on its disk",
			k, r.at, r.what, r.jobs, r.returned, len(r.held), len(r.lost), float64(r.orphan)/(1<<20))
		time.Sleep(down)
		gone0 = len(linesMatching(coord, goneMsg, "worker=node1 "))
		node = e.startNodeLog("node1", e.keyFile, fmt.Sprintf("node1-%d", k+1))
	}
	final := node
	c := e.waitDone(coord, 3*time.Minute)
	if !final.Exited() && len(linesMatching(final, `msg="job started"`)) > 0 {
		e.lastJobShipped(final) // waits for its job's end: the job file is gone then
	}
	e.checkOrphansGone(final, dir, nil)

	// Each piece accepted exactly once.
	count := make([]int, n)
	for _, l := range linesMatching(coord, `msg="piece accepted"`) {
		p, err := strconv.Atoi(logField(l, "piece"))
		if err != nil || p < 0 || p >= n {
			t.Fatalf("bad piece in %q", l)
		}
		count[p]++
	}
	twice, never := 0, 0
	for p, c := range count {
		switch {
		case c > 1:
			twice++
			t.Errorf("the coordinator accepted piece %d %d times", p, c)
		case c == 0:
			never++
		}
	}
	if never > 0 {
		t.Errorf("%d pieces were never accepted, yet the download completed", never)
	}
	// Deliveries of verified pieces beyond the end game's duplicates.
	drops, dups := droppedVerified(coord), endGameDups(t, coord)
	again := 0
	for w, d := range drops {
		if d > dups[w] {
			again += d - dups[w]
			t.Errorf("%s delivered %d pieces the coordinator had verified already; the end game duplicated only %d to it: %d verified pieces downloaded again",
				w, d, dups[w], d-dups[w])
		}
	}
	returned, lost, held := 0, 0, 0
	for _, r := range done {
		returned += r.returned
		lost += len(r.lost)
		held += len(r.held)
	}
	t.Logf("%d/%d kills landed, output byte-identical; contributions %v", len(done), kills, c)
	t.Logf("verified pieces downloaded again: %d (accepted twice: %d; delivered after verification %v, end-game duplicates %v); "+
		"lost with the killed node: %d verified pieces it had not shipped (%.1f MiB, of %d it held), plus its unfinished ones; leases returned: %d pieces",
		again, twice, drops, dups, lost, mib(lost), held, returned)
	if len(done) < kills {
		t.Errorf("only %d of %d kills landed before the download finished: the matrix proves little", len(done), kills)
	}
}

// goneMsg is the sub-chief's line for a worker whose lease returns to
// the pool.
const goneMsg = `msg="worker gone; its lease returns to the pool"`

// afterNodeKill waits until the coordinator has taken back the killed
// node's lease (its sub-chief had logged gone0 lease returns for node1
// before this run of the node), then reads what the kill cost from the
// node's job files.
func (e *env) afterNodeKill(tor *metainfo.Torrent, coord, node *lab.Proc, dir string, gone0 int) nodeKill {
	e.t.Helper()
	var r nodeKill
	var jobs []uint64
	for _, l := range linesMatching(node, `msg="job started"`) {
		if j, err := strconv.ParseUint(logField(l, "job"), 10, 64); err == nil {
			jobs = append(jobs, j)
		}
	}
	r.jobs = len(jobs)
	// Every session the coordinator opened to the node ends with its lease
	// back in the pool; after that no piece of the dead node is accepted.
	if r.jobs > 0 {
		gone := func() (int, int) {
			return len(linesMatching(coord, "delegating to swarm node", "node=node1 ")),
				len(linesMatching(coord, goneMsg, "worker=node1 "))
		}
		err := lab.Poll(e.ctx, 30*time.Second, 50*time.Millisecond, func() (bool, error) {
			d, g := gone()
			return d == g || coord.Exited(), nil
		})
		if err != nil {
			d, g := gone()
			e.t.Fatalf("the coordinator opened %d sessions to node1 and returned %d leases, 30 s after a kill: %v", d, g, err)
		}
		for _, l := range linesMatching(coord, goneMsg, "worker=node1 ")[gone0:] {
			k, _ := strconv.Atoi(logField(l, "pieces"))
			r.returned += k
		}
	}
	accepted := acceptedBy(coord)
	mine := map[string]bool{}
	for _, j := range jobs {
		name := fmt.Sprintf("job-%x-%016x.part", tor.InfoHash, j)
		mine[name] = true
		path := filepath.Join(dir, name)
		held, onDisk, err := verifiedPieces(tor.Info, path)
		if errors.Is(err, os.ErrNotExist) {
			continue // the job ended before the kill
		}
		if err != nil {
			e.t.Fatal(err)
		}
		r.orphan += onDisk
		r.held = append(r.held, held...)
		for _, p := range held {
			if _, ok := accepted[p]; !ok {
				r.lost = append(r.lost, p)
			}
		}
	}
	// A node that got as far as joining removed what earlier kills left.
	if len(linesMatching(node, `msg="cluster member started"`)) > 0 {
		e.checkOrphansGone(node, dir, mine)
	}
	return r
}

// checkOrphansGone fails if dir holds a node file (job-*, kept-*, *.tmp)
// other than those in keep: the node run p should have removed them (at
// its start) or never left them.
func (e *env) checkOrphansGone(p *lab.Proc, dir string, keep map[string]bool) {
	e.t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		e.t.Fatal(err)
	}
	var left []string
	var bytes int64
	for _, de := range ents {
		name := de.Name()
		if keep[name] || !(strings.HasPrefix(name, "job-") || strings.HasPrefix(name, "kept-") || strings.HasSuffix(name, ".tmp")) {
			continue
		}
		left = append(left, name)
		if fi, err := de.Info(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				bytes += st.Blocks * 512
			}
		}
	}
	if len(left) > 0 {
		e.t.Errorf("%s: %d files left by earlier runs of the node in its data directory (%.1f MiB on disk): %v",
			p.Name, len(left), float64(bytes)/(1<<20), left)
	}
}

// verifiedPieces returns the pieces of a node's job file whose bytes hash
// right (the node downloaded them), and the bytes the file holds on disk.
// Holes are skipped without reading (SEEK_DATA).
func verifiedPieces(info *metainfo.Info, path string) ([]int, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	var onDisk int64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		onDisk = st.Blocks * 512
	}
	const seekData = 3 // SEEK_DATA
	var ps []int
	buf := make([]byte, info.PieceLength)
	for p := range info.NumPieces() {
		off, n := info.PieceOffset(p), info.PieceLen(p)
		data, err := f.Seek(off, seekData)
		if errors.Is(err, syscall.ENXIO) {
			break // no data past off
		}
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", path, err)
		}
		if data >= off+n {
			continue // a hole
		}
		if _, err := f.ReadAt(buf[:n], off); err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, fmt.Errorf("%s: %w", path, err)
		}
		if sha1.Sum(buf[:n]) == info.PieceHash(p) {
			ps = append(ps, p)
		}
	}
	slices.Sort(ps)
	return ps, onDisk, nil
}

// lastProgress is the coordinator's latest progress, as its progress
// line shows it ("42.0%"), or "start".
func lastProgress(p *lab.Proc) string {
	last := "start"
	for _, l := range strings.Split(p.ReadLog(), "\n") {
		if v, ok := lab.ProgressPercent(l); ok {
			last = strconv.FormatFloat(v, 'f', 1, 64) + "%"
		}
	}
	return last
}
