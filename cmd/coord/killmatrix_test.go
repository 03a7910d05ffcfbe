package main

import (
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"flotilla/internal/lab"
	"flotilla/internal/testenv"
)

// killSeedEnv replays a kill matrix with the seed a failure printed.
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
	t.Logf("kill seed %d (replay: %s=%d go test -run '^%s$')", seed, killSeedEnv, seed, t.Name())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("FAILED with kill seed %d: replay with %s=%d", seed, killSeedEnv, seed)
		}
	})
	return seed
}

// acceptedRE matches the sub-chief's debug line for a piece it verified
// and queued for storage (swarm: "piece accepted").
var acceptedRE = regexp.MustCompile(`msg="piece accepted" .*\bpiece=(\d+)`)

// acceptedPieces lists the pieces a coord run's -v output says it accepted.
func acceptedPieces(out string) []int {
	var ps []int
	for _, m := range acceptedRE.FindAllStringSubmatch(out, -1) {
		p, _ := strconv.Atoi(m[1])
		ps = append(ps, p)
	}
	return ps
}

// TestKillMatrix: kill -9 the coordinator at 30 seeded random points spread
// over one download, resuming with the same command each time. Half the
// runs are killed in full flow (once the completion record has grown in
// that run, then a random 0-1.2 s more: past the store's next sync, or
// not), the others at a random 0-1.5 s after start (start-up, resume
// check, first pieces). After every kill the record may claim only pieces
// whose bytes are on disk (haveCount re-hashes them), and no later run may
// fetch a piece the record held (the sub-chief's "piece accepted" lines,
// counted). The last run completes byte-identical.
//
// Pieces accepted but not yet durable when a kill lands are fetched again
// by the next run: that is the cost of kill -9 (their bytes were in
// memory or unsynced, at most the store's SyncInterval of them) and is
// logged, not failed.
func TestKillMatrix(t *testing.T) {
	const kills = 30
	seed := killSeed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	l := newSwarmLab(t, lab.PayloadSpec{Name: "payload.bin", Seed: 11, Size: 32 << 20}, 1<<18, 1, "--max-upload-limit=1M")
	n := l.info.Info.NumPieces()
	out := t.TempDir()
	recPath := lab.CompletionRecordPath(out, l.info.InfoHash)
	args := []string{"download", l.torrent.Path, "--out", out, "--listen", "127.0.0.1:0",
		"--progress", "none", "-v"}
	fetched := make([]int, n) // runs that accepted each piece
	refetched, killed := 0, 0
	recorded := func() []bool {
		have := make([]bool, n)
		if rec, err := lab.ReadCompletionRecord(recPath); err == nil {
			for p := range n {
				have[p] = rec.Has(p)
			}
		}
		return have
	}
	recordedCount := func() int {
		if rec, err := lab.ReadCompletionRecord(recPath); err == nil {
			return rec.Count()
		}
		return 0
	}
	check := func(run int, out string, had []bool) {
		for _, p := range acceptedPieces(out) {
			fetched[p]++
			if had[p] {
				refetched++
				t.Errorf("run %d fetched piece %d again, which the completion record already held", run, p)
			}
		}
	}
	for k := range kills {
		flow := rng.IntN(2) > 0
		delay := time.Duration(rng.IntN(1200)) * time.Millisecond
		if !flow {
			delay = time.Duration(rng.IntN(1500)) * time.Millisecond
		}
		had := recorded()
		start := recordedCount()
		began := time.Now()
		p := startCoord(t, args...)
		if flow {
			testenv.WaitFor(t, time.Minute, "the record to grow", func() bool {
				select {
				case <-p.done:
					return true
				default:
				}
				return recordedCount() > start
			})
		}
		time.Sleep(delay)
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		check(k, p.out.String(), had)
		if p.cmd.ProcessState.ExitCode() == 0 {
			t.Logf("run %d finished before its kill", k)
			break
		}
		killed++
		kept := haveCount(t, l.info, out) // every recorded piece hashes on disk
		what := "after start"
		if flow {
			what = "after a sync"
		}
		t.Logf("kill %2d %4dms %s, run lasted %4dms: %3d/%d pieces recorded", k, delay.Milliseconds(), what,
			time.Since(began).Milliseconds(), kept, n)
	}
	had := recorded()
	p := startCoord(t, args...)
	if code := p.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("final run: exit %d:\n%s", code, p.out.String())
	}
	check(kills, p.out.String(), had)
	if err := l.payload.Verify(out); err != nil {
		t.Fatalf("after %d kills: %v", killed, err)
	}
	twice := 0
	for _, c := range fetched {
		if c > 1 {
			twice += c - 1
		}
	}
	t.Logf("%d/%d kills resumed, output byte-identical; recorded pieces fetched again: %d; pieces fetched again because a kill caught them accepted but not yet durable: %d",
		killed, kills, refetched, twice)
	if killed < kills*2/3 {
		t.Errorf("only %d of %d kills landed before the download finished: the matrix proves little", killed, kills)
	}
}
