package delegate

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"flotilla/internal/bitfield"
	"flotilla/internal/testenv"
	"flotilla/swarm/swarmtest"
)

// TestNodeKeepsPiecesForNextSession: the coordinator's session dies (no
// Stop) after the node downloaded its lease. The node keeps every piece
// the coordinator had not confirmed (Have) in kept-<infohash>.part/.bits;
// the next session for the torrent gets them shipped at once, unasked,
// except one we damaged on disk, which the node re-hashes and drops.
// Before, a lost session threw the node's pieces away with its job file.
func TestNodeKeepsPiecesForNextSession(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 3<<20+777, 64<<10)
	n := tt.Info.NumPieces()
	seeder := newSeeder(t, tt)
	srv, dir := newRealNode(t)

	r1 := mustDialNode(t, srv.Addr().String(), tt)
	r1.AddPeers([]netip.AddrPort{addrPort(t, seeder.Addr())})
	r1.Assign(allPieces(n))
	got1, _ := collect(t, r1, tt, n, 30*time.Second)
	// The coordinator stored two pieces (and said so), then died.
	confirmed := []int{0, 1}
	r1.Have(confirmed)
	time.Sleep(100 * time.Millisecond) // let Have reach the node
	r1.sess.sess.Close()
	r1.Close()

	part, bits := keptPaths(dir, tt.InfoHash)
	testenv.WaitFor(t, 10*time.Second, "kept pieces written", func() bool {
		_, err := os.Stat(bits)
		return err == nil && srv.Stats().ActiveJobs == 0
	})
	b, err := os.ReadFile(bits)
	if err != nil {
		t.Fatal(err)
	}
	have := bitfield.Bitfield(b[len(keptMagic)+20:])
	var kept []int
	for p := range n {
		if have.Has(p) {
			kept = append(kept, p)
		}
	}
	for p := range got1 {
		if !slices.Contains(kept, p) && !slices.Contains(confirmed, p) {
			t.Errorf("piece %d was shipped to the dead coordinator, never confirmed, and not kept", p)
		}
	}
	for _, p := range confirmed {
		if slices.Contains(kept, p) {
			t.Errorf("piece %d was confirmed by the coordinator and kept anyway", p)
		}
	}
	if len(kept) != n-len(confirmed) {
		t.Fatalf("kept %d pieces, want %d", len(kept), n-len(confirmed))
	}
	damaged := kept[len(kept)/2]
	f, err := os.OpenFile(part, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("rot"), tt.Info.PieceOffset(damaged)+100); err != nil {
		t.Fatal(err)
	}
	f.Close()

	r2 := mustDialNode(t, srv.Addr().String(), tt)
	defer r2.Close()
	got2, _ := collect(t, r2, tt, len(kept)-1, 10*time.Second) // collect checks every hash
	if got2[damaged] {
		t.Errorf("the damaged kept piece %d was shipped", damaged)
	}
	for _, p := range kept {
		if p != damaged && !got2[p] {
			t.Errorf("kept piece %d was not shipped to the next session", p)
		}
	}
	if _, err := os.Stat(bits); !os.IsNotExist(err) {
		t.Errorf("the kept list outlived its adoption: %v", err)
	}
	r2.Close()
	testenv.WaitFor(t, 5*time.Second, "job data removed", func() bool {
		ents, _ := os.ReadDir(dir)
		return len(ents) == 0 && srv.Stats().ActiveJobs == 0
	})
	t.Logf("kept %d of %d pieces across the lost session; shipped %d to the next one (one damaged, dropped); files: %v",
		len(kept), n, len(got2), filepath.Base(part))
}

// TestNodeKeepsEveryJobOfLostSession: a session carrying two torrents'
// jobs dies; the node keeps the pieces of both, each for the next
// session of its torrent.
func TestNodeKeepsEveryJobOfLostSession(t *testing.T) {
	tts := []*swarmtest.Torrent{swarmtest.NewTorrent(t, 1<<20+333, 64<<10), swarmtest.NewTorrent(t, 1<<20+999, 64<<10)}
	srv, dir := newRealNode(t)
	s := dialSession(t, srv.Addr().String())
	for _, tt := range tts {
		seeder := newSeeder(t, tt)
		r := openJob(t, s, tt)
		r.AddPeers([]netip.AddrPort{addrPort(t, seeder.Addr())})
		r.Assign(allPieces(tt.Info.NumPieces()))
		collect(t, r, tt, tt.Info.NumPieces(), 30*time.Second)
	}
	s.sess.Close() // the coordinator died
	for _, tt := range tts {
		_, bits := keptPaths(dir, tt.InfoHash)
		testenv.WaitFor(t, 15*time.Second, "kept pieces written", func() bool {
			_, err := os.Stat(bits)
			return err == nil && srv.Stats().ActiveJobs == 0
		})
		b, err := os.ReadFile(bits)
		if err != nil {
			t.Fatal(err)
		}
		if have := bitfield.Bitfield(b[len(keptMagic)+20:]); have.Count() != tt.Info.NumPieces() {
			t.Errorf("kept %d of %d pieces", have.Count(), tt.Info.NumPieces())
		}
	}
	s2 := dialSession(t, srv.Addr().String())
	for _, tt := range tts {
		r := openJob(t, s2, tt)
		collect(t, r, tt, tt.Info.NumPieces(), 10*time.Second) // shipped unasked
	}
}

// dialSession dials a Session to a node's address.
func dialSession(t testing.TB, addr string) *Session {
	t.Helper()
	s, err := DialSession(context.Background(), addr, testKey(1), testClientConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
