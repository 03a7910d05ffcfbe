package coordinator

import (
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"flotilla/cluster"
	"flotilla/internal/testenv"
)

// newHeldRouter is a router on loopback whose identification waits until
// the test ends, so that every connection stays pending.
func newHeldRouter(t *testing.T, cfg IncomingConfig) *router {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := newRouter(ln, cfg, 0, slog.New(slog.DiscardHandler))
	t.Cleanup(r.close)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // before r.close
	r.do(func() {
		r.identify = func(c net.Conn, _ time.Time) ([20]byte, net.Conn, error) {
			<-release
			return [20]byte{}, nil, errNotBitTorrent
		}
	})
	return r
}

// dialRouterFrom opens n connections to r from ip.
func dialRouterFrom(t *testing.T, r *router, ip string, n int) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	for range n {
		c, err := d.Dial("tcp4", r.ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
}

// A swarm node of the cluster starting many jobs dials the coordinator
// from one address with many swarms at once: all of them are identified,
// none evicted (MaxPendingPerMember), while a stranger's address is still
// capped at MaxPendingPerIP.
func TestRouterMemberBurst(t *testing.T) {
	r := newHeldRouter(t, IncomingConfig{Timeout: time.Minute, MaxPending: 64, MaxPendingPerIP: 8, MaxPendingPerMember: 32})
	srcs := memberSources{}
	srcs.update(cluster.Event{Kind: cluster.EventJoin, Member: cluster.Member{Name: "node1",
		Addr: netip.MustParseAddrPort("127.0.7.1:7946"),
		Meta: cluster.Meta{Role: cluster.RoleSwarmNode, DelegateAddr: "127.0.7.1:7947"}}})
	r.setMembers(srcs.set())

	dialRouterFrom(t, r, "127.0.7.1", 20)
	testenv.WaitFor(t, 10*time.Second, "the member's 20 connections accepted", func() bool { return r.Stats().Accepted == 20 })
	if st := r.Stats(); st.Evicted != 0 || st.Pending != 20 {
		t.Fatalf("member burst: %+v, want 20 pending and none evicted", st)
	}

	dialRouterFrom(t, r, "127.0.7.2", 12)
	testenv.WaitFor(t, 10*time.Second, "the stranger's 12 connections accepted", func() bool { return r.Stats().Accepted == 32 })
	if st := r.Stats(); st.Evicted != 4 || st.Pending != 28 {
		t.Fatalf("stranger: %+v, want 4 of its 12 evicted (MaxPendingPerIP 8), 28 pending", st)
	}

	// When MaxPending is reached, strangers' connections go first: 36
	// more from other strangers evict strangers' connections only.
	for i := range 9 {
		dialRouterFrom(t, r, netip.AddrFrom4([4]byte{127, 0, 8, byte(i + 1)}).String(), 4)
	}
	testenv.WaitFor(t, 10*time.Second, "the other strangers' connections accepted", func() bool { return r.Stats().Accepted == 68 })
	var member int
	r.do(func() { member = r.perIP[netip.MustParsePrefix("127.0.7.1/32")] })
	if st := r.Stats(); st.Pending != 64 || member != 20 {
		t.Fatalf("at MaxPending: %+v, member pending %d; want 64 pending, the member's 20 kept", st, member)
	}

	// A member that left is a stranger again.
	srcs.update(cluster.Event{Kind: cluster.EventLeave, Member: cluster.Member{Name: "node1"}})
	r.setMembers(srcs.set())
	before := r.Stats().Evicted
	dialRouterFrom(t, r, "127.0.7.1", 1)
	testenv.WaitFor(t, 10*time.Second, "the former member's connection accepted", func() bool { return r.Stats().Accepted == 69 })
	if st := r.Stats(); st.Evicted-before != 1 {
		t.Fatalf("a former member over MaxPendingPerIP: %d evicted, want 1 (its oldest)", st.Evicted-before)
	}
}
