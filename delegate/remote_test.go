package delegate

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"flotilla/internal/memlimit"
	"flotilla/internal/testenv"
	"flotilla/swarm"
	"flotilla/swarm/swarmtest"
)

func TestFullJob(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 2<<20+1234, 64<<10)
	n := tt.Info.NumPieces()
	for _, tr := range allTransports {
		t.Run(tr.name, func(t *testing.T) {
			var mu sync.Mutex
			var onJob []JobInfo
			stopped := make(chan struct{}, 1)
			ts := newTestServer(t, tr, tt, func(c *ServerConfig) {
				c.OnJob = func(ji JobInfo) func() {
					mu.Lock()
					defer mu.Unlock()
					onJob = append(onJob, ji)
					return func() { stopped <- struct{}{} }
				}
			})
			spec := jobSpec(tt)
			spec.CoordinatorPeerAddr = "127.0.0.1:6881"
			r, err := dial(t, ts, testKey(1), spec, testClientConfig(t))
			if err != nil {
				t.Fatal(err)
			}
			w := ts.factory.worker(t, 0)
			mu.Lock()
			defer mu.Unlock()
			if len(onJob) != 1 || onJob[0].InfoHash != tt.InfoHash || onJob[0].ID != r.JobID() ||
				!slices.Equal(onJob[0].Trackers[0], spec.Trackers[0]) || onJob[0].AddPeers == nil {
				t.Fatalf("OnJob got %+v", onJob)
			}
			r.Assign(allPieces(n))
			got, other := collect(t, r, tt, n, 20*time.Second)
			if len(got) != n || len(other) != 0 {
				t.Fatalf("%d pieces, other events %+v", len(got), other)
			}
			r.Have([]int{0, 1, 2})
			r.AddPeers([]netip.AddrPort{netip.MustParseAddrPort("10.1.2.3:4000")})
			r.Assign([]int{-1, n, n + 5}) // out of range: never sent
			testenv.WaitFor(t, 5*time.Second, "have and peers reach the worker", func() bool {
				_, haves, peers, _ := w.snapshot()
				return len(haves) == 3 && len(peers) == 2
			})
			assigned, haves, peers, _ := w.snapshot()
			if !slices.Equal(assigned, allPieces(n)) || !slices.Equal(haves, []int{0, 1, 2}) ||
				peers[0] != netip.MustParseAddrPort("127.0.0.1:6881") || peers[1] != netip.MustParseAddrPort("10.1.2.3:4000") {
				t.Fatalf("worker saw assigned %v haves %v peers %v", assigned, haves, peers)
			}
			testenv.WaitFor(t, 5*time.Second, "status from the node", func() bool {
				st := r.Status()
				return st.Delivered == n && st.Peers == 2 && st.Name == "node1"
			})
			if _, _, left := onJob[0].Stats(); left != 0 {
				t.Fatalf("left %d after every piece shipped", left)
			}
			if w.released.Load() != int64(n) {
				t.Fatalf("released %d of %d pieces", w.released.Load(), n)
			}
			r.Close()
			testenv.WaitFor(t, 5*time.Second, "node ends the job", func() bool { return w.closed.Load() && ts.Stats().ActiveSessions == 0 })
			<-stopped
			if _, ok := <-r.Events(); ok {
				t.Fatal("events open after Close")
			}
			if st := ts.Stats(); st.Stops != 1 || st.ActiveJobs != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// A coordinator that does not take events stops reading the data
// streams; yamux windows fill and the node's shippers block, so the node
// stops taking pieces from its worker.
func TestBackPressure(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 16<<20, 256<<10) // 64 pieces
	n := tt.Info.NumPieces()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			ts := newTestServer(t, tr, tt, nil)
			cfg := testClientConfig(t)
			r, err := dial(t, ts, testKey(1), jobSpec(tt), cfg)
			if err != nil {
				t.Fatal(err)
			}
			w := ts.factory.worker(t, 0)
			r.Assign(allPieces(n))
			emitted := waitStable(t, 10*time.Second, 300*time.Millisecond, w.emitted.Load)
			held := emitted - w.released.Load()
			streams := int64(DefaultServerConfig().DataStreams)
			window := int64(cfg.Session.StreamWindow) / tt.Info.PieceLength
			// In flight: MaxPiecesInFlight unreleased (waiting in Events: nobody reads), one per data
			// reader, a window per stream, the node's shippers and pump,
			// and the one the worker is blocked offering.
			bound := int64(cfg.MaxPiecesInFlight) + streams + streams*(window+1) + streams + 2
			t.Logf("emitted %d of %d pieces while nobody reads; node holds %d; bound %d", emitted, n, held, bound)
			if emitted > bound || emitted >= int64(n) {
				t.Fatalf("worker emitted %d pieces with a stalled coordinator (bound %d)", emitted, bound)
			}
			if held > streams+2 {
				t.Fatalf("node holds %d pieces", held)
			}
			got, _ := collect(t, r, tt, n, 20*time.Second)
			if len(got) != n {
				t.Fatalf("%d pieces", len(got))
			}
		})
	}
}

func TestSessionDrop(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			ts := newTestServer(t, tr, tt, nil)
			r := mustDial(t, ts, tt)
			w := ts.factory.worker(t, 0)
			r.Assign([]int{0, 1})
			collect(t, r, tt, 2, 5*time.Second)
			ts.Close() // the node goes away
			select {
			case ev := <-r.Events():
				if ev.Kind != swarm.EventFailed || !errors.Is(ev.Err, ErrSessionLost) {
					t.Fatalf("event %+v, want EventFailed/ErrSessionLost", ev)
				}
				t.Log(ev.Err)
			case <-time.After(10 * time.Second):
				t.Fatal("no EventFailed after the node went away")
			}
			if _, ok := <-r.Events(); ok {
				t.Fatal("events still open after EventFailed")
			}
			if !errors.Is(r.Err(), ErrSessionLost) || !w.closed.Load() {
				t.Fatalf("err %v worker closed %v", r.Err(), w.closed.Load())
			}
			r.Assign([]int{3}) // harmless after the end
			r.Close()
		})
	}
}

// The coordinator dropping the connection ends the node's job.
func TestCoordinatorDrop(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	ts := newTestServer(t, transports[1], tt, nil)
	r := mustDial(t, ts, tt)
	w := ts.factory.worker(t, 0)
	r.sess.sess.Close() // no Stop
	testenv.WaitFor(t, 5*time.Second, "node ends the job", func() bool { return w.closed.Load() && ts.Stats().ActiveSessions == 0 })
	if st := ts.Stats(); st.Stops != 0 {
		t.Fatalf("stats %+v", st)
	}
	ev := <-r.Events()
	if ev.Kind != swarm.EventFailed {
		t.Fatalf("%+v", ev)
	}
}

func TestRevokeRoundTrip(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			r, w := mustDialHolding(t, tr, tt)
			r.Assign(allPieces(10))
			r.Revoke([]int{1, 2, 3, 99}, true)
			select {
			case ev := <-r.Events():
				if ev.Kind != swarm.EventRevoked || !slices.Equal(ev.Pieces, []int{1, 2, 3}) {
					t.Fatalf("event %+v", ev)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no EventRevoked")
			}
			_, _, _, revokes := w.snapshot()
			if len(revokes) != 1 || !slices.Equal(revokes[0], []int{1, 2, 3}) {
				t.Fatalf("worker saw revokes %v", revokes)
			}
			w.resume()
			got, _ := collect(t, r, tt, 7, 5*time.Second)
			for _, p := range []int{1, 2, 3} {
				if got[p] {
					t.Fatalf("revoked piece %d delivered", p)
				}
			}
		})
	}
}

// A Revoke without force that gets nothing back is still answered: the
// node names the pieces it keeps, having started them (Kept), so the
// coordinator need not wait to copy them to an idle swarm.
func TestRevokeAnswersKeptPieces(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			r, w := mustDialHolding(t, tr, tt)
			w.mu.Lock()
			w.started = map[int]bool{4: true, 5: true}
			w.mu.Unlock()
			r.Assign(allPieces(10))
			r.Revoke([]int{4, 5}, false)
			select {
			case ev := <-r.Events():
				if ev.Kind != swarm.EventRevoked || len(ev.Pieces) != 0 || !slices.Equal(ev.Kept, []int{4, 5}) {
					t.Fatalf("event %+v; want nothing given back, Kept [4 5]", ev)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no answer to a Revoke that gets nothing back")
			}
			r.Revoke([]int{4, 6}, false)
			select {
			case ev := <-r.Events():
				if ev.Kind != swarm.EventRevoked || !slices.Equal(ev.Pieces, []int{6}) || !slices.Equal(ev.Kept, []int{4}) {
					t.Fatalf("event %+v; want 6 given back, Kept [4]", ev)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no EventRevoked")
			}
			w.resume()
			got, _ := collect(t, r, tt, 9, 5*time.Second)
			if !got[4] || !got[5] || got[6] {
				t.Fatalf("delivered %v; want the kept pieces 4 and 5, not 6", got)
			}
		})
	}
}

func TestRemoteWorkerFailed(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	ts := newTestServer(t, transports[0], tt, nil)
	r := mustDial(t, ts, tt)
	ts.factory.worker(t, 0).fail(errors.New("disk on fire"))
	ev := <-r.Events()
	if ev.Kind != swarm.EventFailed || !errors.Is(ev.Err, ErrRemoteFailed) {
		t.Fatalf("%+v", ev)
	}
	t.Log(ev.Err)
}

func TestJobRejected(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	f := &fakeFactory{tt: tt, err: errors.New("no room")}
	ts := newTestServerWith(t, transports[1], f, nil)
	_, err := dial(t, ts, testKey(1), jobSpec(tt), testClientConfig(t))
	if !errors.Is(err, ErrJobRejected) {
		t.Fatalf("%v, want ErrJobRejected", err)
	}
	t.Log(err)
	// The coordinator checks its own job before dialing.
	spec := jobSpec(tt)
	spec.InfoHash[0] ^= 1
	if _, err := dial(t, ts, testKey(1), spec, testClientConfig(t)); !errors.Is(err, ErrConfig) {
		t.Fatalf("%v, want ErrConfig", err)
	}
}

// A coordinator that sends an oversized frame loses its session; the
// node reads no more than the length.
func TestOversizedFrameOnSession(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	ts := newTestServer(t, transports[1], tt, nil)
	r := mustDial(t, ts, tt)
	w := ts.factory.worker(t, 0)
	var hdr [5]byte
	binary.BigEndian.PutUint32(hdr[:], MaxControlFrame+1)
	hdr[4] = byte(MsgAssign)
	r.sess.q.push(hdr[:])
	testenv.WaitFor(t, 5*time.Second, "node drops the session", func() bool { return w.closed.Load() && ts.Stats().ActiveSessions == 0 })
	ev := <-r.Events()
	if ev.Kind != swarm.EventFailed {
		t.Fatalf("%+v", ev)
	}
}

// Two coordinators' sessions run at once, and a node serves jobs one
// after another.
func TestSeveralCoordinators(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	n := tt.Info.NumPieces()
	ts := newTestServer(t, transports[1], tt, nil)
	r1 := mustDial(t, ts, tt)
	r2 := mustDial(t, ts, tt)
	r1.Assign(allPieces(n))
	r2.Assign(allPieces(n))
	collect(t, r1, tt, n, 10*time.Second)
	collect(t, r2, tt, n, 10*time.Second)
	r1.Close()
	r2.Close()
	r3 := mustDial(t, ts, tt)
	r3.Assign([]int{0})
	collect(t, r3, tt, 1, 10*time.Second)
	if st := ts.Stats(); st.Jobs != 3 || st.Sessions != 3 {
		t.Fatalf("stats %+v", st)
	}
}

// Cancel ends the job but not the session; later messages for it are
// ignored.
func TestCancel(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	ts := newTestServer(t, transports[1], tt, nil)
	r := mustDial(t, ts, tt)
	w := ts.factory.worker(t, 0)
	r.Assign([]int{0})
	collect(t, r, tt, 1, 5*time.Second)
	r.send(MsgCancel, &cancelMsg{Job: r.JobID()})
	testenv.WaitFor(t, 5*time.Second, "job ends", func() bool { return w.closed.Load() && ts.Stats().ActiveJobs == 0 })
	r.Assign([]int{1, 2}) // for the ended job: ignored
	r.send(MsgCancel, &cancelMsg{Job: r.JobID()})
	if err := r.Err(); err != nil || ts.Stats().ActiveSessions != 1 {
		t.Fatalf("session ended by Cancel: %v %+v", err, ts.Stats())
	}
	r.Close()
	testenv.WaitFor(t, 5*time.Second, "stop", func() bool { return ts.Stats().Stops == 1 })
	if assigned, _, _, _ := w.snapshot(); !slices.Equal(assigned, []int{0}) {
		t.Fatalf("worker saw %v", assigned)
	}
}

// A node that hangs without closing the connection is detected by the
// keep-alive: EventFailed follows within about KeepAliveInterval +
// WriteTimeout.
func TestHungNode(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	ts := newTestServer(t, transports[0], tt, nil)
	c := ts.conn(t)
	cfg := testClientConfig(t)
	cfg.Session.KeepAliveInterval = 100 * time.Millisecond
	cfg.Session.WriteTimeout = 300 * time.Millisecond
	r, err := Client(context.Background(), c, testKey(1), jobSpec(tt), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.Assign([]int{0})
	collect(t, r, tt, 1, 5*time.Second)
	start := time.Now()
	c.(*memConn).freeze()
	select {
	case ev := <-r.Events():
		if ev.Kind != swarm.EventFailed || !errors.Is(ev.Err, ErrSessionLost) {
			t.Fatalf("%+v", ev)
		}
		t.Logf("hung node detected after %v: %v", time.Since(start), ev.Err)
	case <-time.After(5 * time.Second):
		t.Fatal("hung node not detected")
	}
	c.Close() // lets the node side end too
}

// countingPool is a BufferPool that counts and remembers its buffers.
type countingPool struct {
	pieceLen int64
	info     interface{ PieceLen(int) int64 }
	mu       sync.Mutex
	gets     int
	free     [][]byte
}

func (p *countingPool) GetBuffer(piece int) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gets++
	n := p.info.PieceLen(piece)
	if k := len(p.free); k > 0 {
		b := p.free[k-1]
		p.free = p.free[:k-1]
		return b[:n]
	}
	return make([]byte, n, p.pieceLen)
}

func (p *countingPool) PutBuffer(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.free = append(p.free, b[:0])
}

// TestPooledPieces: with UseBuffers, every piece arrives whole and right
// in a buffer from the pool (issue 15: allocating and growing a buffer per
// piece was half of the coordinator's CPU at 8 hosts).
func TestPooledPieces(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 2<<20+1234, 64<<10)
	n := tt.Info.NumPieces()
	ts := newTestServer(t, transports[1], tt, nil)
	r := mustDial(t, ts, tt)
	defer r.Close()
	pool := &countingPool{pieceLen: tt.Info.PieceLength, info: tt.Info}
	r.UseBuffers(pool)
	r.Assign(allPieces(n))
	got, other := collect(t, r, tt, n, 20*time.Second)
	if len(got) != n || len(other) != 0 {
		t.Fatalf("%d pieces, other events %+v", len(got), other)
	}
	pool.mu.Lock()
	defer pool.mu.Unlock()
	if pool.gets != n {
		t.Fatalf("%d buffers taken from the pool for %d pieces", pool.gets, n)
	}
}

// TestRemoteSwarmReservesMemory: while a node's job runs at the
// coordinator, the process's soft memory limit (internal/memlimit) holds
// its pieces in flight and its data streams' windows, and half as much
// again for the collector; the job's end gives them back. (Not parallel: it reads the process-wide limit.)
func TestRemoteSwarmReservesMemory(t *testing.T) {
	const base = 1 << 30
	memlimit.Set(base)
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	ts := newTestServer(t, transports[0], tt, nil)
	r := mustDial(t, ts, tt)
	cfg := testClientConfig(t)
	perStream := tt.Info.PieceLength + int64(cfg.Session.StreamWindow)
	least := int64(cfg.MaxPiecesInFlight)*tt.Info.PieceLength + perStream // one data stream at least
	least += least / 2                                                    // and the collector's room
	r.Assign(allPieces(tt.Info.NumPieces()))
	collect(t, r, tt, 1, 10*time.Second)
	if got := memlimit.Limit() - base; got < least {
		t.Fatalf("reserved %d bytes while the job runs, want at least %d (pieces in flight and a data stream)", got, least)
	}
	r.Close()
	testenv.WaitFor(t, 10*time.Second, "the job's reservation to be given back", func() bool { return memlimit.Limit() == base })
}
