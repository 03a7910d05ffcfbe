package service

import (
	"testing"
	"time"

	"flotilla/coordinator"
	"flotilla/internal/testenv"
	"flotilla/swarm"
)

// The list is one snapshot while nothing changes; a caller's change shows
// in the next list at once, the jobs' own progress shortly after.
func TestListSnapshot(t *testing.T) {
	eng := newFakeEngine()
	s := newTestService(t, "", eng)
	in, err := s.Add(testTorrent(t, "a.bin", 100_000), AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := s.List(); len(l) != 1 || l[0].ID != in.ID {
		t.Fatalf("right after Add: %+v", l)
	}
	waitState(t, s, in.ID, StateDownloading)
	l1, _ := s.listing()
	if l2, _ := s.listing(); l2 != l1 && l2.built.Sub(l1.built) < listProgressAge {
		t.Fatal("nothing changed, yet the snapshot was built again")
	}
	if _, err := s.Pause(in.ID); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.List(); l[0].State != StatePaused {
		t.Fatalf("right after Pause: %s", l[0].State)
	}
	if _, err := s.Resume(in.ID); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, in.ID, StateDownloading)
	testenv.WaitFor(t, 10*time.Second, "the resumed run", func() bool { return eng.startCount("a.bin") == 2 })
	eng.run("a.bin").events <- coordinator.Progress{Status: swarm.Status{Pieces: 7, Written: 3, BytesDone: 3 << 14, Length: 100_000}}
	testenv.WaitFor(t, 5*time.Second, "progress in the list", func() bool {
		l, _ := s.List()
		return l[0].PiecesDone == 3
	})
	l, err := s.listing()
	if err != nil || l.json()[0] != '{' {
		t.Fatalf("list body %.40q, %v", l.json(), err)
	}
}
