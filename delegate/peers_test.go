package delegate

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"flotilla/swarm"
	"flotilla/swarm/swarmtest"
)

// learn makes the fake worker report peers it learned (as PEX does).
func (w *fakeWorker) learn(addrs []netip.AddrPort) {
	w.mu.Lock()
	w.outbox = append(w.outbox, swarm.WorkerEvent{Kind: swarm.EventPeers, Addrs: addrs})
	w.mu.Unlock()
	w.poke()
}

// TestNodePeersReachCoordinator: peers a node's swarm learned go to the
// coordinator's RemoteSwarm as EventPeers (for its sub-chief), at most
// MaxPeersPerMsg at a time.
func TestNodePeersReachCoordinator(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			r, w := mustDialHolding(t, tr, tt)
			var many []netip.AddrPort
			for i := range MaxPeersPerMsg + 50 {
				many = append(many, netip.MustParseAddrPort(fmt.Sprintf("10.1.%d.%d:6881", i/250, i%250+1)))
			}
			w.learn(many[:3])
			w.learn(many)
			select {
			case ev := <-r.Events():
				if ev.Kind != swarm.EventPeers || len(ev.Addrs) == 0 || len(ev.Addrs) > MaxPeersPerMsg || ev.Addrs[0] != many[0] {
					t.Fatalf("event %+v", ev)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no EventPeers from the node")
			}
		})
	}
}

// TestPeerBatchBoundsAndPace: a node's batch keeps at most
// MaxPeersPerMsg distinct addresses and gives one message per
// PeersInterval.
func TestPeerBatchBoundsAndPace(t *testing.T) {
	var b peerBatch
	a := netip.MustParseAddrPort("10.0.0.1:1")
	b.add([]netip.AddrPort{a, a, {}, netip.MustParseAddrPort("10.0.0.2:0")})
	now := time.Now()
	m, ok := b.take(7, now)
	if !ok || m.Job != 7 || len(m.Addrs) != 1 || m.Addrs[0] != a.String() {
		t.Fatalf("first message %+v, %v", m, ok)
	}
	for i := range 3 * MaxPeersPerMsg {
		b.add([]netip.AddrPort{netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)}), 1)})
	}
	if _, ok := b.take(7, now.Add(PeersInterval/2)); ok {
		t.Fatal("a second message within PeersInterval")
	}
	if m, ok := b.take(7, now.Add(PeersInterval)); !ok || len(m.Addrs) != MaxPeersPerMsg {
		t.Fatalf("after PeersInterval: %d addresses, %v", len(m.Addrs), ok)
	}
}

// TestRemoteIgnoresPeersForPrivateTorrent: a coordinator takes no peers
// from a node for a private torrent, and no more than one message per
// half PeersInterval.
func TestRemoteIgnoresPeersForPrivateTorrent(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	for _, private := range []bool{false, true} {
		info := *tt.Info
		info.Private = private
		r := &RemoteSwarm{info: &info, ctrlIn: make(chan swarm.WorkerEvent, 4), dead: make(chan struct{}), log: swarmtest.Logger(t, 0)}
		m := &addPeersMsg{Job: 1, Addrs: []string{"10.0.0.1:1", "junk", "10.0.0.2:0"}}
		now := time.Now()
		r.learned(m, now)
		r.learned(m, now.Add(PeersInterval/4))
		want := 1
		if private {
			want = 0
		}
		if len(r.ctrlIn) != want {
			t.Fatalf("private=%v: %d events", private, len(r.ctrlIn))
		}
		if want == 1 {
			if ev := <-r.ctrlIn; len(ev.Addrs) != 1 || ev.Addrs[0] != netip.MustParseAddrPort("10.0.0.1:1") {
				t.Fatalf("event %+v", ev)
			}
		}
	}
}
