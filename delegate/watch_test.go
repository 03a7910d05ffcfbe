package delegate

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"flotilla/internal/testenv"
	"flotilla/swarm/swarmtest"
	"flotilla/watchdog"
)

// fakeClockWatchdog is a watchdog on a clock that moves only when the test
// advances it.
func fakeClockWatchdog(t *testing.T) (*watchdog.Watchdog, func(time.Duration)) {
	t.Helper()
	var mu sync.Mutex
	now := time.Now()
	cfg := watchdog.DefaultConfig()
	cfg.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	wd, err := watchdog.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wd.Close() })
	return wd, func(d time.Duration) {
		mu.Lock()
		now = now.Add(d)
		mu.Unlock()
		if err := wd.Check(); err != nil {
			t.Error(err)
		}
	}
}

// A node that stops sending mid-piece: its piece read is a watchdog
// packet, and the read stays blocked (however long it takes on the wall
// clock) until the watchdog's clock passes its deadline; the alert then
// ends the read and the job fails with ErrTooSlow (EventFailed: the
// sub-chief returns its lease to the pool). No connection deadline of its
// own bounds the read.
func TestStalledPieceEndedByWatchdog(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 1<<20)
	wd, advance := fakeClockWatchdog(t)
	sent := make(chan struct{})
	release := make(chan struct{})
	conn, done := rawNode(t, func(sess *yamux.Session, _ net.Conn, job *jobMsg) {
		st, err := sess.OpenStream()
		if err != nil {
			return
		}
		writeFrame(t, st, MsgPiece, &pieceHeader{Job: job.Job, Index: 0, Length: 1 << 20})
		st.Write(make([]byte, 1000)) // then nothing more
		close(sent)
		select {
		case <-release:
		case <-sess.CloseChan():
		}
	})
	cfg := testClientConfig(t)
	cfg.Watchdog = wd
	limit := cfg.PieceTimeout + time.Duration(float64(1<<20)/float64(cfg.MinPieceRate)*float64(time.Second))
	r, err := Client(context.Background(), conn, testKey(1), jobSpec(tt), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		r.Close()
		close(release)
		<-done
	}()
	<-sent
	owner := fmt.Sprintf("%x evil", tt.InfoHash)
	pending := func() []watchdog.Packet {
		return wd.Pending(func(p watchdog.Packet) bool { return p.Kind == PieceKind && p.Owner == owner })
	}
	testenv.WaitFor(t, 10*time.Second, "the piece read's packet", func() bool { return len(pending()) == 1 })

	// Just before the deadline on the watchdog's clock: nothing is
	// overdue, however often the job asks, and the read goes on.
	advance(limit - time.Millisecond)
	r.PieceAlert(watchdog.Alert{Packet: watchdog.Packet{Kind: PieceKind, Owner: owner}}) // a spurious wake-up
	if late, err := wd.Overdue([]watchdog.Ticket{{ID: pending()[0].ID, Deadline: pending()[0].Deadline}}); err != nil || late[0] {
		t.Fatalf("overdue before its deadline: %v %v", late, err)
	}
	if err := r.Err(); err != nil {
		t.Fatalf("the job ended before the watchdog's deadline: %v", err)
	}

	advance(2 * time.Millisecond)
	var a watchdog.Alert
	select {
	case a = <-wd.Alerts():
	case <-time.After(10 * time.Second):
		t.Fatal("no alert for the stalled piece")
	}
	if a.Packet.Kind != PieceKind || a.Packet.Owner != owner {
		t.Fatalf("alert for %s %q, want %s %q", a.Packet.Kind, a.Packet.Owner, PieceKind, owner)
	}
	r.PieceAlert(a) // the coordinator routes it here
	expectFailed(t, r, ErrTooSlow)
	testenv.WaitFor(t, 10*time.Second, "the read's packet to be cancelled", func() bool { return len(pending()) == 0 })
}
