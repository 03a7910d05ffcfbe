package delegate

import (
	"testing"
	"time"

	"flotilla/swarm/swarmtest"
)

// BenchmarkSessionThroughput measures piece bytes per second from a node
// (fake worker) to a coordinator over TLS + yamux on loopback TCP; the
// coordinator side only takes the events (no hashing, no disk).
func BenchmarkSessionThroughput(b *testing.B) {
	tt := swarmtest.NewTorrent(b, 64<<20, 1<<20)
	n := tt.Info.NumPieces()
	ts := newTestServer(b, transports[1], tt, nil)
	r, err := dial(b, ts, testKey(1), jobSpec(tt), testClientConfig(b))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(tt.Info.Length)
	b.ResetTimer()
	for range b.N {
		r.Assign(allPieces(n))
		deadline := time.After(time.Minute)
		for got := 0; got < n; {
			select {
			case ev := <-r.Events():
				if len(ev.Data) == 0 {
					b.Fatalf("event %+v", ev)
				}
				r.Release(ev.Piece) // we play the sub-chief
				got++
			case <-deadline:
				b.Fatal("timeout")
			}
		}
	}
}
