package service

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"flotilla/coordinator"
	"flotilla/internal/testenv"
	"flotilla/swarm"
)

func TestAddStartsAndCompletes(t *testing.T) {
	eng := newFakeEngine()
	s := newTestService(t, "", eng)
	in, err := s.Add(testTorrent(t, "a.bin", 100_000), AddOptions{Limits: &Limits{Seed: false}})
	if err != nil {
		t.Fatal(err)
	}
	if len(in.ID) != 12 || in.Name != "a.bin" {
		t.Fatalf("added %+v", in)
	}
	waitState(t, s, in.ID, StateDownloading)
	r := eng.run("a.bin")
	if want := filepath.Join(s.cfg.DataDir, in.ID); r.spec.dir != want {
		t.Fatalf("data dir %q, want %q", r.spec.dir, want)
	}
	r.events <- coordinator.Progress{Status: swarm.Status{Pieces: 7, Written: 3, BytesDone: 3 << 14, Length: 100_000, Peers: 2}}
	testenv.WaitFor(t, 5*time.Second, "progress shown", func() bool {
		d, _ := s.Get(in.ID)
		return d.PiecesDone == 3 && d.Peers == 2
	})
	r.events <- coordinator.Completed{Status: swarm.Status{Pieces: 7, Written: 7, BytesDone: 100_000, Complete: true}}
	d := waitState(t, s, in.ID, StateDone)
	if d.Progress != 1 || d.Completed.IsZero() {
		t.Fatalf("done job: %+v", d.JobInfo)
	}
	testenv.WaitFor(t, 5*time.Second, "the run closed", r.isClosed)
	if len(d.Files) != 1 || d.Files[0].Path != "a.bin" || len(d.Trackers) != 1 {
		t.Fatalf("detail: files %+v trackers %+v", d.Files, d.Trackers)
	}
	if _, err := s.Add(testTorrent(t, "a.bin", 100_000), AddOptions{}); !errors.Is(err, ErrExists) {
		t.Fatalf("adding it again: %v, want ErrExists", err)
	}
}

func TestQueueKeepsMaxActive(t *testing.T) {
	eng := newFakeEngine()
	s := newTestService(t, "", eng, func(c *Config) { c.MaxActive = 1 })
	a, _ := s.Add(testTorrent(t, "a.bin", 50_000), AddOptions{Limits: &Limits{Seed: true}})
	b, _ := s.Add(testTorrent(t, "b.bin", 50_000), AddOptions{})
	waitState(t, s, a.ID, StateDownloading)
	if d := waitState(t, s, b.ID, StateQueued); d.Waiting == "" {
		t.Fatal("queued job does not say why it waits")
	}
	// Seeding takes no slot: b starts once a completes.
	eng.run("a.bin").events <- coordinator.Completed{}
	waitState(t, s, a.ID, StateSeeding)
	waitState(t, s, b.ID, StateDownloading)
}

func TestSeedLimits(t *testing.T) {
	eng := newFakeEngine()
	s := newTestService(t, "", eng)
	in, _ := s.Add(testTorrent(t, "a.bin", 10_000), AddOptions{Limits: &Limits{Seed: true, Ratio: 2}})
	waitState(t, s, in.ID, StateDownloading)
	r := eng.run("a.bin")
	r.events <- coordinator.Completed{}
	waitState(t, s, in.ID, StateSeeding)
	r.events <- coordinator.Progress{Status: swarm.Status{Uploaded: 20_000}}
	waitState(t, s, in.ID, StateDone)
	testenv.WaitFor(t, 5*time.Second, "the run closed", r.isClosed)
	// Raising the limit seeds again, with the upload so far counted.
	if _, err := s.SetLimits(in.ID, Limits{Seed: true, Time: Duration(50 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, in.ID, StateSeeding)
	d := waitState(t, s, in.ID, StateDone)
	if d.Uploaded != 20_000 || d.Seeded < Duration(50*time.Millisecond) {
		t.Fatalf("after the time limit: uploaded %d, seeded %v", d.Uploaded, d.Seeded)
	}
	if _, err := s.SetLimits(in.ID, Limits{Ratio: -1}); err == nil {
		t.Fatal("a negative ratio was accepted")
	}
}

func TestPauseResumeRemove(t *testing.T) {
	eng := newFakeEngine()
	s := newTestService(t, "", eng)
	in, _ := s.Add(testTorrent(t, "a.bin", 10_000), AddOptions{})
	waitState(t, s, in.ID, StateDownloading)
	r := eng.run("a.bin")
	if _, err := s.Pause(in.ID); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "the run closed", r.isClosed)
	waitState(t, s, in.ID, StatePaused)
	if _, err := s.Resume(in.ID); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, in.ID, StateDownloading)
	if n := eng.startCount("a.bin"); n != 2 {
		t.Fatalf("started %d times, want 2", n)
	}
	dir := filepath.Join(s.cfg.DataDir, in.ID)
	if err := os.WriteFile(filepath.Join(dir, "a.bin"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(in.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("remove without delete_data: %v", err)
	}
	if _, err := os.Stat(torrentPath(s.cfg.StateDir, in.ID)); !os.IsNotExist(err) {
		t.Fatalf("the torrent file stayed: %v", err)
	}
	if _, err := s.Get(in.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removed job: %v", err)
	}
	in, _ = s.Add(testTorrent(t, "a.bin", 10_000), AddOptions{})
	waitState(t, s, in.ID, StateDownloading)
	if err := s.Remove(in.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("remove with delete_data left %s: %v", dir, err)
	}
}

func TestFailedJobRetriesOnResume(t *testing.T) {
	eng := newFakeEngine()
	eng.failing = errTest
	s := newTestService(t, "", eng)
	in, _ := s.Add(testTorrent(t, "a.bin", 10_000), AddOptions{})
	if d := waitState(t, s, in.ID, StateFailed); d.Error == "" {
		t.Fatal("failed job without an error")
	}
	eng.mu.Lock()
	eng.failing = nil
	eng.mu.Unlock()
	s.Resume(in.ID)
	waitState(t, s, in.ID, StateDownloading)
	eng.run("a.bin").events <- coordinator.Failed{Err: errTest}
	waitState(t, s, in.ID, StateFailed)
}

func TestRestartResumesJobs(t *testing.T) {
	dir := t.TempDir()
	eng := newFakeEngine()
	s := newTestService(t, dir, eng)
	a, _ := s.Add(testTorrent(t, "a.bin", 10_000), AddOptions{})
	b, _ := s.Add(testTorrent(t, "b.bin", 10_000), AddOptions{Paused: true})
	c, _ := s.Add(testTorrent(t, "c.bin", 10_000), AddOptions{Limits: &Limits{Seed: false}})
	waitState(t, s, a.ID, StateDownloading)
	waitState(t, s, c.ID, StateDownloading)
	eng.run("a.bin").events <- coordinator.Progress{Status: swarm.Status{Uploaded: 123}}
	eng.run("c.bin").events <- coordinator.Completed{}
	waitState(t, s, c.ID, StateDone)
	testenv.WaitFor(t, 5*time.Second, "a's upload counted", func() bool {
		d, _ := s.Get(a.ID)
		return d.Uploaded == 123
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !eng.run("a.bin").isClosed() {
		t.Fatal("Close left a job running")
	}

	eng2 := newFakeEngine()
	s2 := newTestService(t, dir, eng2)
	if d := waitState(t, s2, a.ID, StateDownloading); d.Uploaded != 123 {
		t.Fatalf("uploaded %d after restart, want 123", d.Uploaded)
	}
	waitState(t, s2, b.ID, StatePaused)
	waitState(t, s2, c.ID, StateDone)
	if eng2.startCount("c.bin") != 0 || eng2.startCount("b.bin") != 0 {
		t.Fatal("a done or paused job was started after restart")
	}
}

// TestSeedTurnedOnWhileDownloading: a job started without seeding whose
// limits turn seeding on completes and is restarted as a seeder.
func TestSeedTurnedOnWhileDownloading(t *testing.T) {
	eng := newFakeEngine()
	s := newTestService(t, "", eng)
	in, _ := s.Add(testTorrent(t, "a.bin", 10_000), AddOptions{Limits: &Limits{Seed: false}})
	waitState(t, s, in.ID, StateDownloading)
	first := eng.run("a.bin")
	if first.spec.seed {
		t.Fatal("started to seed with seed=false")
	}
	s.SetLimits(in.ID, Limits{Seed: true})
	first.events <- coordinator.Completed{}
	waitState(t, s, in.ID, StateSeeding)
	testenv.WaitFor(t, 5*time.Second, "restarted as a seeder", func() bool {
		r := eng.run("a.bin")
		return first.isClosed() && r != first && r.spec.seed
	})
}
