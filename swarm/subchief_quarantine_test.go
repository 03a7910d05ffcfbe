package swarm

import (
	"bytes"
	"testing"
	"time"

	"flotilla/internal/testenv"
	"flotilla/swarm/swarmtest"
)

// identifiedFake is a fakeWorker that names its host (Identified).
type identifiedFake struct {
	*fakeWorker
	id string
}

func (f identifiedFake) Identity() string { return f.id }

// A worker quarantined for bad pieces comes back under another name from
// the same host (a node that left and rejoined, or renamed itself): the
// sub-chief refuses it — no lease, closed — for the rest of the download,
// keeps reporting the first one as quarantined, and still takes a worker
// from another host. Before quarantine was keyed by identity the returning
// worker was given work again.
func TestSubChiefQuarantineByIdentity(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 64*16<<10, 16<<10)
	cfg, st := subChiefConfig(t, tt)
	d := newTestDownload(t, cfg)
	const evilHost = "delegate=10.0.0.9 gossip=10.0.0.9"
	liar := newFakeWorker("evil", tt)
	liar.corrupt = true
	liar.hold = false
	d.AddWorker(identifiedFake{liar.start(), evilHost})
	testenv.WaitFor(t, 10*time.Second, "Status to show evil quarantined with its identity", func() bool {
		for _, w := range d.Status().Workers {
			if w.Name == "evil" && w.State == WorkerQuarantined && w.Identity == evilHost {
				return true
			}
		}
		return false
	})

	back := newFakeWorker("evil-renamed", tt) // honest data: refused all the same
	d.AddWorker(identifiedFake{back.start(), evilHost})
	select {
	case <-back.done:
	case <-time.After(5 * time.Second):
		t.Fatal("a worker from a quarantined host was not closed")
	}
	if a, dl, _, _ := back.counts(); a != 0 || dl != 0 {
		t.Fatalf("a worker from a quarantined host was leased %d pieces and delivered %d", a, dl)
	}

	good := newFakeWorker("good", tt)
	d.AddWorker(identifiedFake{good.start(), "delegate=10.0.0.10 gossip=10.0.0.10"})
	waitComplete(t, d, 10*time.Second)
	if !bytes.Equal(st.Bytes(), tt.Data) {
		t.Fatal("data differs")
	}
	ws := workerStates(d.Status())
	if ws["evil"] != WorkerQuarantined || ws["good"] != WorkerActive {
		t.Errorf("worker states at completion %v, want evil quarantined, good active", ws)
	}
	if r := d.Status().Returned; r.BadPiece == 0 {
		t.Errorf("returned %+v, want the bad pieces counted", r)
	}
	if _, ok := ws["evil-renamed"]; ok {
		t.Errorf("the refused worker has a row in Status: %v", ws)
	}
}
