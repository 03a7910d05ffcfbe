package piecestore

import (
	"crypto/sha1"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// powerLossSeedEnv replays TestPowerLoss with the seed a failure printed.
const powerLossSeedEnv = "PIECESTORE_POWERLOSS_SEED"

// powerFault is what the power cut leaves on disk.
type powerFault int

const (
	// faultData: a data file's sync fails (EIO): the kernel dropped the
	// dirty pages and the disk never got them. The store's record must
	// not claim them, now or after a retry (fsync does not fail twice).
	faultData powerFault = iota
	// faultRecord: the data is durable, but the new record never reached
	// the disk (its slot is torn) and the power goes.
	faultRecord
	// faultCut: the power goes during a sync: nothing written since each
	// file's last sync survives, the sync never completes.
	faultCut
)

func (f powerFault) String() string {
	return [...]string{"data sync lost", "record write lost", "power cut"}[f]
}

// powerDisk is a store's disk (its hooks) that remembers, per descriptor,
// the ranges written since that descriptor's last sync, and at the k-th
// sync call loses them as the fault says. Writes are buffered (no
// O_DIRECT) so "written" and "durable" differ, as with the page cache.
type powerDisk struct {
	mu      sync.Mutex
	armed   bool
	k       int // fault at this sync call (counting from 1 once armed)
	calls   int
	fault   powerFault
	fired   bool
	pending map[int][][2]int64 // fd -> [off, len] written, not synced
	data    map[int]bool       // the data files' descriptors
	s       *Store
}

func (d *powerDisk) hooks() *hooks {
	h := defaultHooks()
	h.pwritev = func(fd int, iovs [][]byte, off int64) (int, error) {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.fired {
			return 0, syscall.EIO // the machine is off: nothing more lands
		}
		n, err := defaultHooks().pwritev(fd, iovs, off)
		if n > 0 {
			d.pending[fd] = append(d.pending[fd], [2]int64{off, int64(n)})
		}
		return n, err
	}
	h.fdatasync = func(fd int) error { return d.sync([]int{fd}) }
	h.syncfs = func(int) error {
		d.mu.Lock()
		fds := make([]int, 0, len(d.data))
		for fd := range d.data {
			fds = append(fds, fd)
		}
		d.mu.Unlock()
		return d.sync(fds)
	}
	return &h
}

func (d *powerDisk) firedNow() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fired
}

// lose overwrites what was written to fd since its last sync with zeros:
// the bytes the disk holds for a sparse file that never got them.
func (d *powerDisk) lose(fd int) {
	for _, r := range d.pending[fd] {
		if err := pwriteFull(fd, make([]byte, r[1]), r[0]); err != nil {
			panic(fmt.Sprintf("powerDisk: cannot simulate the loss: %v", err))
		}
	}
	delete(d.pending, fd)
}

func (d *powerDisk) sync(fds []int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fired {
		return syscall.EIO
	}
	record := len(fds) == 1 && !d.data[fds[0]]
	if d.armed {
		d.calls++
	}
	fire := d.armed && d.calls >= d.k && (d.fault != faultRecord || record) &&
		(d.fault != faultData || !record)
	if !fire {
		for _, fd := range fds {
			if err := unix.Fdatasync(fd); err != nil {
				return err
			}
			delete(d.pending, fd)
		}
		return nil
	}
	d.fired = true
	switch d.fault {
	case faultData:
		for _, fd := range fds {
			d.lose(fd)
		}
	case faultRecord:
		// The slot being written is the one after the last committed
		// sequence number (the syncer is inside rc.write).
		rc := d.s.rec
		off := int64((rc.seq+1)%2) * int64(rc.slot)
		if err := pwriteFull(fds[0], make([]byte, rc.slot), off); err != nil {
			panic(err)
		}
		for fd := range d.pending {
			if d.data[fd] {
				d.lose(fd)
			}
		}
	case faultCut:
		for fd := range d.pending {
			if d.data[fd] {
				d.lose(fd)
			}
		}
		if record {
			rc := d.s.rec
			off := int64((rc.seq+1)%2) * int64(rc.slot)
			if err := pwriteFull(fds[0], make([]byte, rc.slot), off); err != nil {
				panic(err)
			}
		}
	}
	return syscall.EIO
}

// TestPowerLoss: power-loss crashes at seeded random points, of the three
// kinds above, in many rounds. After each, a reopened store must claim
// only pieces whose bytes are really on disk (checked against the
// torrent's content), must still claim every piece it had published as
// written before the fault (nothing durable is lost), and must complete
// the download, byte-identical. A failure prints the seed; set
// PIECESTORE_POWERLOSS_SEED to replay it.
func TestPowerLoss(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(powerLossSeedEnv); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", powerLossSeedEnv, v, err)
		}
	}
	t.Logf("seed %d (replay: %s=%d go test -run TestPowerLoss ./piecestore/)", seed, powerLossSeedEnv, seed)
	defer func() {
		if t.Failed() {
			t.Logf("FAILED with seed %d: replay with %s=%d", seed, powerLossSeedEnv, seed)
		}
	}()
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	tt := newTorrent(t, "power", 4096, fileSpec{"a", 50_000}, fileSpec{"d/b", 33_000}, fileSpec{"c", 81_920})
	const rounds = 30
	fired := 0
	for r := range rounds {
		fault := powerFault(rng.IntN(3))
		k := 1 + rng.IntN(12)
		if powerLossRound(t, tt, rng, fault, k, r) {
			fired++
		}
		if t.Failed() {
			return
		}
	}
	if fired < rounds/2 {
		t.Errorf("the fault fired in only %d of %d rounds: the test proves little", fired, rounds)
	}
}

// powerLossRound runs one download until the fault, kills the store and
// checks the reopened one. It reports whether the fault fired.
func powerLossRound(t *testing.T, tt *testTorrent, rng *rand.Rand, fault powerFault, k, round int) bool {
	t.Helper()
	dir := filepath.Join(t.TempDir(), fmt.Sprint(round))
	cfg := testConfig(tt, dir, nil)
	cfg.DirectIO = false
	cfg.SyncBytes = 3 * 4096 // many small batches: many sync points
	d := &powerDisk{k: k, fault: fault, pending: map[int][][2]int64{}, data: map[int]bool{}}
	s, err := open(cfg, *d.hooks())
	if err != nil {
		t.Fatalf("round %d: open: %v", round, err)
	}
	d.mu.Lock()
	d.s = s
	for _, fd := range s.testFDs {
		if fd >= 0 {
			d.data[fd] = true
		}
	}
	d.pending = map[int][][2]int64{} // open's own writes were synced
	d.armed = true
	d.mu.Unlock()

	n := s.NumPieces()
	published := make([]bool, n)
	order := rng.Perm(n)
	for len(order) > 0 && s.Err() == nil {
		g := min(1+rng.IntN(4), len(order))
		for _, p := range order[:g] {
			b := s.GetBuffer(p)
			copy(b, tt.piece(p))
			if err := s.Submit(t.Context(), p, b); err != nil {
				break // the store failed: expected once the fault fired
			}
		}
		order = order[g:]
		// Wait for this group (or the failure).
		deadline := time.Now().Add(10 * time.Second)
		for done := false; !done; {
			select {
			case p, ok := <-s.Written():
				if !ok {
					done = true
					break
				}
				published[p] = true
			case <-time.After(5 * time.Millisecond):
				done = s.Err() != nil || s.nHave.Load() == int64(n-len(order))
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the store neither wrote nor failed (err %v)", round, s.Err())
			}
		}
	}
	// Drain what was published just before the failure.
	for drained := false; !drained; {
		select {
		case p, ok := <-s.Written():
			if !ok {
				drained = true
				break
			}
			published[p] = true
		default:
			drained = true
		}
	}
	fired := d.firedNow()
	s.kill()

	s2, err := open(cfg, defaultHooks())
	if err != nil {
		t.Fatalf("round %d (%v at sync %d): reopen after the power loss: %v", round, fault, k, err)
	}
	defer s2.Close()
	files := readFiles(t, tt, dir)
	claimed := 0
	for p := range n {
		if !s2.HasPiece(p) {
			if published[p] {
				t.Errorf("round %d (%v at sync %d): piece %d was published as written before the fault and is no longer claimed: durable work lost", round, fault, k, p)
			}
			continue
		}
		claimed++
		off := tt.info.PieceOffset(p)
		if sha1.Sum(files[off:off+tt.info.PieceLen(p)]) != tt.info.PieceHash(p) {
			t.Errorf("round %d (%v at sync %d): the reopened store claims piece %d, whose bytes are not on disk", round, fault, k, p)
		}
	}
	if t.Failed() {
		return fired
	}
	missing := 0
	for p := range n {
		if !s2.HasPiece(p) {
			submit(t, s2, tt, p)
			missing++
		}
	}
	waitWritten(t, s2, missing)
	if err := s2.Close(); err != nil {
		t.Fatalf("round %d: close after resume: %v", round, err)
	}
	checkFiles(t, tt, dir)
	t.Logf("round %2d: %-17v at sync %2d fired=%-5v published %3d, claimed after reopen %3d of %d", round, fault, k, fired, countTrue(published), claimed, n)
	return fired
}

// readFiles returns the torrent's content as the files on disk hold it.
func readFiles(t *testing.T, tt *testTorrent, dir string) []byte {
	t.Helper()
	var all []byte
	for i := range tt.info.Files {
		b, err := os.ReadFile(filepath.Join(dir, tt.info.FilePath(i)))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	if len(all) != len(tt.data) {
		t.Fatalf("files hold %d bytes, the torrent %d", len(all), len(tt.data))
	}
	return all
}

func countTrue(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}
