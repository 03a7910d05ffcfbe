package delegate

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"flotilla/swarm/swarmtest"
)

// A node that sends a piece header and then trickles bytes neither pins
// a whole piece buffer (memory grows with what arrived) nor holds it
// forever: past PieceTimeout plus the length at MinPieceRate its session
// ends with ErrTooSlow and its lease returns to the pool. Before the
// fix the coordinator allocated the 16 MiB piece at the header and
// waited for ever.
func TestTricklingNode(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 16<<20, 16<<20)
	release := make(chan struct{})
	conn, done := rawNode(t, func(sess *yamux.Session, _ net.Conn, job *jobMsg) {
		st, err := sess.OpenStream()
		if err != nil {
			return
		}
		writeFrame(t, st, MsgPiece, &pieceHeader{Job: job.Job, Index: 0, Length: 16 << 20})
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-release:
				return
			case <-sess.CloseChan():
				return
			case <-tick.C:
				if _, err := st.Write([]byte{0}); err != nil {
					return
				}
			}
		}
	})
	cfg := testClientConfig(t)
	cfg.PieceTimeout = 300 * time.Millisecond
	cfg.MinPieceRate = 64 << 20 // 16 MiB at 64 MiB/s: +250 ms
	r, err := Client(context.Background(), conn, testKey(1), jobSpec(tt), cfg)
	if err != nil {
		t.Fatal(err)
	}
	before := totalAlloc()
	start := time.Now()
	expectFailed(t, r, ErrTooSlow)
	grew := totalAlloc() - before
	t.Logf("trickler dropped after %v; coordinator allocated %d KiB meanwhile", time.Since(start), grew>>10)
	if grew >= 8<<20 {
		t.Fatalf("coordinator allocated %d MiB for a piece of which it got a few bytes", grew>>20)
	}
	r.Close()
	close(release)
	<-done
}
