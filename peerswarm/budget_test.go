package peerswarm

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"flotilla/internal/testenv"
	"flotilla/peerwire"
	"flotilla/swarm/swarmtest"
)

// SetMaxPeers changes a running swarm's cap: lowering it drops the peers
// over the new caps at once (incoming ones over the new three-quarter
// quota first), raising it lets new peers in again; Status reports the
// cap in force.
func TestSetMaxPeers(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	cfg := testConfig(tt, swarmtest.NewStorage(tt.Info, nil), 21)
	cfg.Listener = listen(t, "127.0.0.1")
	cfg.MaxPeers = 8
	d := newTestDownload(t, cfg)
	local := d.Local()
	if got := local.Status().MaxPeers; got != 8 {
		t.Fatalf("Status().MaxPeers = %d at the start, want 8", got)
	}

	for i := range 4 {
		c, _ := rawPeer(t, d, tt, fmt.Sprintf("127.0.6.%d", i+1), fmt.Sprintf("-TEST00-setmaxpeer%02d", i))
		keepTalking(c)
	}
	out := startHostile(t, "127.0.6.50", tt, func(c net.Conn, r *peerwire.Reader) {
		for {
			if _, err := r.ReadMessage(); err != nil {
				return
			}
		}
	})
	d.AddPeers([]netip.AddrPort{out.addr(t)})
	testenv.WaitFor(t, 10*time.Second, "four incoming peers and one dialed", func() bool { return connectedPeers(t, d) == 5 })

	// Lowered to 2: the incoming quota is 1, so three incoming peers go;
	// the dialed one stays.
	local.SetMaxPeers(2)
	testenv.WaitFor(t, 10*time.Second, "the cap of 2 in force", func() bool { return local.Status().MaxPeers == 2 })
	var n, outgoing int
	onOwner(t, local, func() {
		n = local.peers.n
		for p := range local.peers.all() {
			if p.outgoing {
				outgoing++
			}
		}
	})
	if n != 2 || outgoing != 1 {
		t.Fatalf("after lowering the cap to 2: %d peers, %d of them dialed; want 2 and 1", n, outgoing)
	}
	c, r := rawPeer(t, d, tt, "127.0.6.20", "-TEST00-setmaxpeer20")
	readUntilClosed(t, c, r, "incoming connection over the lowered cap")

	// Raised to 8: newcomers get in again.
	local.SetMaxPeers(8)
	testenv.WaitFor(t, 10*time.Second, "the cap of 8 in force", func() bool { return local.Status().MaxPeers == 8 })
	for i := range 3 {
		c, r := rawPeer(t, d, tt, fmt.Sprintf("127.0.6.%d", 30+i), fmt.Sprintf("-TEST00-setmaxpeer3%d", i))
		keepTalking(c)
		if !stillOpen(c, r) {
			t.Fatalf("incoming peer %d refused under the raised cap", i)
		}
	}
	if n := connectedPeers(t, d); n != 5 {
		t.Fatalf("%d peers connected after raising the cap, want 5", n)
	}
}

// lessUseful puts the peers sending us the least first, then those we
// send the least.
func TestLessUseful(t *testing.T) {
	now := time.Now()
	mk := func(down, up int) *peer {
		p := &peer{h: &connHandle{}}
		p.down.Tick(now)
		p.up.Tick(now)
		p.down.Add(down)
		p.up.Add(up)
		p.down.Tick(now.Add(time.Second))
		p.up.Tick(now.Add(time.Second))
		return p
	}
	fast, slow, uploader := mk(1<<20, 0), mk(1<<10, 0), mk(1<<10, 1<<20)
	if lessUseful(slow, fast) >= 0 || lessUseful(slow, uploader) >= 0 || lessUseful(uploader, fast) >= 0 {
		t.Fatalf("order wrong: rates fast %v slow %v uploader %v/%v", fast.down.Rate(), slow.down.Rate(), uploader.down.Rate(), uploader.up.Rate())
	}
}
