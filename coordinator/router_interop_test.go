package coordinator

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"flotilla/internal/lab"
	"flotilla/internal/testenv"
	"flotilla/metainfo"
)

// startLabSwarm starts opentracker and aria2c seeders on the loopback
// hosts given (a payload of its own per name and seed).
func startLabSwarm(t *testing.T, cl *lab.Cleanup, name string, seed uint64, size int64, seeders []lab.Host, uploadLimit string) (*lab.Swarm, *metainfo.Torrent) {
	t.Helper()
	cfg := lab.DefaultSwarmConfig()
	cfg.Dir = t.TempDir()
	cfg.Payload = lab.PayloadSpec{Name: name, Seed: seed, Size: size}
	cfg.PieceLength = 256 << 10
	cfg.Seeders = len(seeders)
	cfg.SeederUploadLimit = uploadLimit
	sw, err := lab.StartSwarm(context.Background(), cl, cfg, lab.Loopback("127.0.0.1"), seeders)
	if err != nil {
		t.Fatal(err)
	}
	tor, err := metainfo.Load(sw.Torrent.Path)
	if err != nil {
		t.Fatal(err)
	}
	return sw, tor
}

// TestTwoTorrentsFromTwoSwarms: one Coordinator downloads two torrents
// at once from two local swarms of real programs (opentracker, aria2c).
// Torrent A comes from its seeders as usual (we dial them). Torrent B's
// only live seeder is an aria2c started after our job announced itself:
// it learns of us from the tracker and dials our one listener, where the
// router must hand its connection to job B while job A runs. Both
// downloads are byte-identical.
func TestTwoTorrentsFromTwoSwarms(t *testing.T) {
	testenv.Require(t, "aria2c", "opentracker", "mktorrent")
	cl := &lab.Cleanup{}
	t.Cleanup(cl.Run)
	// A's seeders are capped so that A still runs while B's seeder dials in.
	swA, torA := startLabSwarm(t, cl, "a.bin", 1, 16<<20, lab.LoopbackHosts(60, 2), "2M")
	swB, torB := startLabSwarm(t, cl, "b.bin", 2, 8<<20, lab.LoopbackHosts(62, 1), "")
	// B's first seeder goes: the tracker still lists it, but only a peer
	// that dials us can serve B.
	swB.Seeders[0].Stop()

	c := newTestCoordinator(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	jobA := startTestJob(t, c, torA, dirA, nil)
	jobB := startTestJob(t, c, torB, dirB, nil)
	ctx := context.Background()
	err := lab.Poll(ctx, 20*time.Second, 50*time.Millisecond, func() (bool, error) {
		r, err := swB.Tracker.ScrapeInfo(ctx, torB.InfoHash)
		return err == nil && r.Incomplete >= 1, nil
	})
	if err != nil {
		t.Fatalf("job B never announced itself to tracker B: %v", err)
	}

	seeder := lab.Loopback("127.0.0.63")
	port := testenv.FreePort(t, seeder.IP())
	args := lab.Aria2SeedArgs(seeder.IP(), port, filepath.Join(swB.Dir, "data"), swB.Torrent.Path)
	cmd := seeder.Command(ctx, "aria2c", args...)
	cmd.Dir = swB.Dir
	if _, err := lab.StartProc(cl, "late-seeder", cmd, filepath.Join(swB.Dir, "logs", "late-seeder-"+strconv.Itoa(port)+".log")); err != nil {
		t.Fatal(err)
	}

	for _, j := range []*Job{jobB, jobA} {
		ev, ok := nextEvent(t, j, 120*time.Second).(Completed)
		if !ok {
			t.Fatalf("job %s: %#v, want Completed", j.cfg.Torrent.Info.Name, ev)
		}
		t.Logf("job %s completed: %d bytes", j.cfg.Torrent.Info.Name, ev.Status.BytesDone)
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := swA.Payload.Verify(dirA); err != nil {
		t.Errorf("torrent A: %v", err)
	}
	if err := swB.Payload.Verify(dirB); err != nil {
		t.Errorf("torrent B: %v", err)
	}
	s := c.Incoming()
	t.Logf("incoming: %+v", s)
	if s.Routed < 1 {
		t.Errorf("no incoming connection routed: %+v", s)
	}
}
