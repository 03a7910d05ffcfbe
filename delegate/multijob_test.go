package delegate

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"flotilla/internal/testenv"
	"flotilla/swarm"
	"flotilla/swarm/swarmtest"
)

// openSession opens a Session over a fresh connection to ts.
func openSession(t testing.TB, ts *testServer) *Session {
	t.Helper()
	c := ts.conn(t)
	s, err := ClientSession(context.Background(), c, testKey(1), testClientConfig(t))
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openJob opens tt's job on s, failing the test on error.
func openJob(t testing.TB, s *Session, tt *swarmtest.Torrent) *RemoteSwarm {
	t.Helper()
	r, err := s.OpenJob(context.Background(), jobSpec(tt))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// workerFor is the node's worker of job id.
func (f *fakeFactory) workerFor(t testing.TB, id uint64) *fakeWorker {
	t.Helper()
	var w *fakeWorker
	testenv.WaitFor(t, 5*time.Second, "worker of the job created", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		for i, j := range f.jobs {
			if j.ID == id {
				w = f.ws[i]
				return true
			}
		}
		return false
	})
	return w
}

// drain reads r's events until n distinct good pieces arrived (playing
// the sub-chief); it may run on any goroutine.
func drain(r *RemoteSwarm, tt *swarmtest.Torrent, n int, timeout time.Duration) error {
	got := map[int]bool{}
	deadline := time.After(timeout)
	for len(got) < n {
		select {
		case ev, ok := <-r.Events():
			if !ok {
				return fmt.Errorf("job %d: events closed after %d pieces: %v", r.JobID(), len(got), r.Err())
			}
			if ev.Kind != swarm.EventPiece {
				continue
			}
			if ev.Verified || sha1.Sum(ev.Data) != tt.Info.PieceHash(ev.Piece) {
				return fmt.Errorf("job %d: piece %d wrong or marked verified", r.JobID(), ev.Piece)
			}
			got[ev.Piece] = true
			r.Release(ev.Piece)
		case <-deadline:
			return fmt.Errorf("job %d: only %d of %d pieces after %v", r.JobID(), len(got), n, timeout)
		}
	}
	return nil
}

// expectEnd waits for r's EventFailed and checks its error.
func expectEnd(t *testing.T, r *RemoteSwarm, want error) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-r.Events():
			if !ok {
				t.Fatalf("job %d: events closed without EventFailed", r.JobID())
			}
			if ev.Kind == swarm.EventPiece {
				r.Release(ev.Piece)
			}
			if ev.Kind != swarm.EventFailed {
				continue
			}
			if !errors.Is(ev.Err, want) {
				t.Fatalf("job %d failed with %v, want %v", r.JobID(), ev.Err, want)
			}
			return
		case <-deadline:
			t.Fatalf("job %d: no EventFailed", r.JobID())
		}
	}
}

// One session carries 20 jobs at once, each delivering every piece;
// closing some leaves the others running on the same session.
func TestSessionCarriesManyJobs(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 512<<10, 32<<10)
	n := tt.Info.NumPieces()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			ts := newTestServer(t, tr, tt, func(c *ServerConfig) { c.MaxJobs, c.MaxJobsPerSession = 20, 20 })
			s := openSession(t, ts)
			rs := make([]*RemoteSwarm, 20)
			var wg sync.WaitGroup
			errs := make(chan error, len(rs))
			for i := range rs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r, err := s.OpenJob(context.Background(), jobSpec(tt))
					if err != nil {
						errs <- err
						return
					}
					rs[i] = r
					r.Assign(allPieces(n))
					if err := drain(r, tt, n, 20*time.Second); err != nil {
						errs <- err
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if t.Failed() {
				return
			}
			for _, r := range rs {
				t.Cleanup(func() { r.Close() })
			}
			if st := ts.Stats(); st.Sessions != 1 || st.Jobs != 20 || st.ActiveJobs != 20 || s.Jobs() != 20 {
				t.Fatalf("stats %+v, session jobs %d; want one session with 20 jobs", st, s.Jobs())
			}
			// Closing half the jobs ends theirs on the node only.
			for _, r := range rs[:10] {
				w := ts.factory.workerFor(t, r.JobID())
				r.Close()
				testenv.WaitFor(t, 5*time.Second, "the node ends the closed job", w.closed.Load)
			}
			testenv.WaitFor(t, 5*time.Second, "the node counts ten jobs", func() bool { return ts.Stats().ActiveJobs == 10 })
			if st := ts.Stats(); st.ActiveSessions != 1 || st.Stops != 0 {
				t.Fatalf("stats %+v after closing 10 jobs", st)
			}
			for _, r := range rs[10:] {
				r.Assign([]int{0, n - 1})
				if err := drain(r, tt, 2, 10*time.Second); err != nil {
					t.Fatal(err)
				}
				if ts.factory.workerFor(t, r.JobID()).closed.Load() {
					t.Fatalf("job %d ended on the node", r.JobID())
				}
			}
		})
	}
}

// A node at its job cap refuses the next job with ErrNodeBusy and keeps
// the session; once a job ended, the next one is taken. The per-session
// cap leaves room for another coordinator.
func TestNodeJobCaps(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 256<<10, 32<<10)
	ts := newTestServer(t, transports[1], tt, func(c *ServerConfig) { c.MaxJobs, c.MaxJobsPerSession = 3, 2 })
	s1 := openSession(t, ts)
	a := openJob(t, s1, tt)
	openJob(t, s1, tt)
	_, err := s1.OpenJob(context.Background(), jobSpec(tt))
	if !errors.Is(err, ErrNodeBusy) || !errors.Is(err, ErrJobRejected) {
		t.Fatalf("third job on a session: %v, want ErrNodeBusy", err)
	}
	t.Log(err)
	s2 := openSession(t, ts)
	openJob(t, s2, tt)
	_, err = s2.OpenJob(context.Background(), jobSpec(tt))
	if !errors.Is(err, ErrNodeBusy) {
		t.Fatalf("job over the node's cap: %v, want ErrNodeBusy", err)
	}
	t.Log(err)
	if s1.Err() != nil || s2.Err() != nil || ts.Stats().Busy != 1 {
		t.Fatalf("sessions %v %v, stats %+v", s1.Err(), s2.Err(), ts.Stats())
	}
	a.Close()
	testenv.WaitFor(t, 5*time.Second, "the node ends the closed job", func() bool { return ts.Stats().ActiveJobs == 2 })
	r := openJob(t, s2, tt)
	r.Assign([]int{1})
	if err := drain(r, tt, 1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

// A session that drops fails every job on it; a job whose node worker
// fails ends alone.
func TestSessionLostFailsEveryJob(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 256<<10, 32<<10)
	ts := newTestServer(t, transports[1], tt, nil)
	s := openSession(t, ts)
	rs := []*RemoteSwarm{openJob(t, s, tt), openJob(t, s, tt), openJob(t, s, tt)}
	ts.factory.workerFor(t, rs[0].JobID()).fail(errors.New("boom"))
	expectEnd(t, rs[0], ErrRemoteFailed)
	testenv.WaitFor(t, 5*time.Second, "the node ends the failed job", ts.factory.workerFor(t, rs[0].JobID()).closed.Load)
	rs[1].Assign([]int{2})
	if err := drain(rs[1], tt, 1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	s.sess.Close() // the connection drops
	for _, r := range rs[1:] {
		expectEnd(t, r, ErrSessionLost)
	}
	testenv.WaitFor(t, 5*time.Second, "the node ends every job", func() bool { return ts.Stats().ActiveJobs == 0 })
	if _, err := s.OpenJob(context.Background(), jobSpec(tt)); !errors.Is(err, ErrSessionLost) {
		t.Fatalf("job on a lost session: %v, want ErrSessionLost", err)
	}
}

// A version 2 node carries one job per session: the coordinator refuses
// a second itself.
func TestVersion2NodeOneJob(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 256<<10, 32<<10)
	ts := newTestServer(t, transports[1], tt, func(c *ServerConfig) { c.version, c.minVersion = 2, 2 })
	s := openSession(t, ts)
	if s.Version() != 2 {
		t.Fatalf("negotiated %d, want 2", s.Version())
	}
	a := openJob(t, s, tt)
	if _, err := s.OpenJob(context.Background(), jobSpec(tt)); !errors.Is(err, ErrNodeBusy) {
		t.Fatalf("second job on a version 2 session: %v, want ErrNodeBusy", err)
	}
	a.Close()
	r := openJob(t, s, tt)
	r.Assign([]int{0})
	if err := drain(r, tt, 1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

// Each job's swarm gets its share of the node's peers: MaxPeers divided
// by the jobs running, at least 1.
func TestJobPeers(t *testing.T) {
	for _, c := range []struct{ peers, jobs, want int }{{80, 8, 10}, {80, 1, 80}, {80, 2, 40}, {80, 3, 26}, {5, 8, 1}, {80, 0, 80}} {
		if got := jobPeers(c.peers, c.jobs); got != c.want {
			t.Errorf("MaxPeers %d, %d jobs: %d per job, want %d", c.peers, c.jobs, got, c.want)
		}
	}
}

// The node's peers follow the jobs running: one job gets the whole
// MaxPeers, two get half each, and when one ends the other gets the
// whole budget back.
func TestPeerBudgetFollowsJobs(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 256<<10, 32<<10)
	ts := newTestServer(t, transport{name: "mem"}, tt, func(c *ServerConfig) { c.Swarm.MaxPeers = 80 })
	s := openSession(t, ts)
	capOf := func(w *fakeWorker) int { return w.Status().MaxPeers }

	a := openJob(t, s, tt)
	wa := ts.factory.workerFor(t, a.JobID())
	if got := capOf(wa); got != 80 {
		t.Fatalf("one job: its swarm's cap is %d, want all 80", got)
	}
	b := openJob(t, s, tt)
	wb := ts.factory.workerFor(t, b.JobID())
	if ca, cb := capOf(wa), capOf(wb); ca != 40 || cb != 40 {
		t.Fatalf("two jobs: caps %d and %d, want 40 each", ca, cb)
	}
	a.Close()
	testenv.WaitFor(t, 5*time.Second, "the first job to end on the node", func() bool { return wa.closed.Load() })
	testenv.WaitFor(t, 5*time.Second, "the remaining job to get every peer", func() bool { return capOf(wb) == 80 })
	if got := ts.PeerShare(); got != 80 {
		t.Fatalf("node share %d with one job, want 80", got)
	}
}

// The real local swarm of a node's job takes its share: one job has the
// node's whole MaxPeers, a second halves it.
func TestPeerBudgetRealSwarm(t *testing.T) {
	srv, _ := newRealNode(t)
	tt1 := swarmtest.NewTorrent(t, 256<<10, 32<<10)
	tt2 := swarmtest.NewTorrent(t, 256<<10+1, 32<<10)
	caps := func() []int {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		var cs []int
		for c := range srv.capped {
			cs = append(cs, c.(*localWorker).Status().MaxPeers)
		}
		return cs
	}
	all := srv.cfg.Swarm.MaxPeers
	r1 := mustDialNode(t, srv.Addr().String(), tt1)
	defer r1.Close()
	testenv.WaitFor(t, 5*time.Second, "one swarm with every peer", func() bool {
		cs := caps()
		return len(cs) == 1 && cs[0] == all
	})
	r2 := mustDialNode(t, srv.Addr().String(), tt2)
	defer r2.Close()
	testenv.WaitFor(t, 5*time.Second, "two swarms with half each", func() bool {
		cs := caps()
		return len(cs) == 2 && cs[0] == all/2 && cs[1] == all/2
	})
	r1.Close()
	testenv.WaitFor(t, 5*time.Second, "the remaining swarm with every peer again", func() bool {
		cs := caps()
		return len(cs) == 1 && cs[0] == all
	})
}

// A data stream for a job the coordinator just closed is closed quietly
// (the node opened it before it heard Cancel); one for a job the session
// never ran is a protocol error that ends the session.
func TestDataStreamForEndedJob(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 256<<10, 32<<10)
	ready, release := make(chan uint64, 1), make(chan struct{})
	conn, done := rawNode(t, func(sess *yamux.Session, ctrl net.Conn, a *jobMsg) {
		typ, body, err := readControlFrame(ctrl, fromCoordinator)
		var b jobMsg
		if err != nil || typ != MsgJob || decodeBody(typ, body, &b) != nil {
			t.Errorf("second job: %v %v", typ, err)
			return
		}
		writeFrame(t, ctrl, MsgJobAccepted, &jobAcceptedMsg{Job: b.Job})
		for { // until A's Cancel
			typ, body, err := readControlFrame(ctrl, fromCoordinator)
			if err != nil {
				t.Error(err)
				return
			}
			var c cancelMsg
			if typ == MsgCancel && decodeBody(typ, body, &c) == nil && c.Job == a.Job {
				break
			}
		}
		st, _ := sess.OpenStream()
		writeFrame(t, st, MsgPiece, &pieceHeader{Job: a.Job, Index: 0, Length: uint32(tt.Info.PieceLen(0))})
		st.Write(tt.Piece(0))
		st2, _ := sess.OpenStream()
		writeFrame(t, st2, MsgPiece, &pieceHeader{Job: b.Job, Index: 1, Length: uint32(tt.Info.PieceLen(1))})
		st2.Write(tt.Piece(1))
		ready <- a.Job ^ b.Job ^ 1 // an id never run
		<-release
		st3, _ := sess.OpenStream()
		writeFrame(t, st3, MsgPiece, &pieceHeader{Job: a.Job ^ b.Job ^ 1, Index: 0, Length: uint32(tt.Info.PieceLen(0))})
		<-sess.CloseChan()
	})
	s, err := ClientSession(context.Background(), conn, testKey(1), testClientConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, err := s.OpenJob(context.Background(), jobSpec(tt))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.OpenJob(context.Background(), jobSpec(tt))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a.Close()
	if err := drain(b, tt, 1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	never := <-ready
	close(release)
	expectEnd(t, b, ErrProtocol)
	// The session ended for the job never run, not for the closed one.
	if err := b.Err(); !strings.Contains(err.Error(), fmt.Sprintf("job %d,", never)) {
		t.Fatalf("session ended with %v, want the data stream for job %d", err, never)
	}
	<-done
}

// Closing a job returns without waiting for the node to close the job's
// data streams: a node that never reads its control stream again does
// not hold up the sub-chief that removes it.
func TestJobCloseDoesNotWaitForNode(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 256<<10, 32<<10)
	release := make(chan struct{})
	conn, done := rawNode(t, func(sess *yamux.Session, ctrl net.Conn, a *jobMsg) {
		st, _ := sess.OpenStream()
		writeFrame(t, st, MsgPiece, &pieceHeader{Job: a.Job, Index: 0, Length: uint32(tt.Info.PieceLen(0))})
		st.Write(tt.Piece(0))
		<-release // keeps the stream open and reads nothing
	})
	s, err := ClientSession(context.Background(), conn, testKey(1), testClientConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, err := s.OpenJob(context.Background(), jobSpec(tt))
	if err != nil {
		t.Fatal(err)
	}
	if err := drain(a, tt, 1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() {
		a.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waits for the node to close the job's data stream")
	}
	if s.Err() != nil {
		t.Fatalf("the session ended: %v", s.Err())
	}
	close(release)
	<-done
}
