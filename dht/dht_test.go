package dht

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestLocalDHTFindsAnnouncedPeer: a torrent announced by one node of a
// local ten-node DHT is found by another through lookups.
func TestLocalDHTFindsAnnouncedPeer(t *testing.T) {
	nodes := newTestDHT(t, 12)
	ih := RandomID()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := nodes[3].GetPeers(ctx, ih, LookupOptions{Announce: true, Port: 51413})
	if err != nil {
		t.Fatal(err)
	}
	if res.Announced == 0 {
		t.Fatalf("announce accepted by nobody: %+v", res)
	}
	want := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 51413)
	res2, err := nodes[9].GetPeers(ctx, ih, LookupOptions{Announce: true, ImpliedPort: true})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range res2.Peers {
		found = found || p == want
	}
	if !found {
		t.Fatalf("node 9 did not find %v: %+v", want, res2)
	}
	// node 9 announced with implied_port: its DHT port is the peer's
	res3, err := nodes[5].GetPeers(ctx, ih, LookupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	found = false
	for _, p := range res3.Peers {
		found = found || p == nodes[9].Addr()
	}
	if !found {
		t.Fatalf("implied port: node 5 did not find %v: %+v", nodes[9].Addr(), res3)
	}
	t.Logf("lookup: %d queries, %d answered, %d announced, %v", res2.Queries, res2.Responded, res2.Announced, res2.Took)
}

// rawClient is a bare UDP socket speaking KRPC by hand.
type rawClient struct {
	t    *testing.T
	conn *net.UDPConn
}

func newRawClient(t *testing.T) *rawClient {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, conn: c}
}

func (c *rawClient) send(to netip.AddrPort, pkt []byte) {
	if _, err := c.conn.WriteToUDPAddrPort(pkt, to); err != nil {
		c.t.Fatal(err)
	}
}

// recv returns the next decodable message, or false after a short wait.
func (c *rawClient) recv(wait time.Duration) (msg, bool) {
	buf := make([]byte, maxDatagram)
	c.conn.SetReadDeadline(time.Now().Add(wait))
	for {
		n, _, err := c.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return msg{}, false
		}
		if m, err := decodeMsg(append([]byte(nil), buf[:n]...)); err == nil && m.Y != 'q' {
			return m, true
		}
	}
}

func (c *rawClient) query(to netip.AddrPort, method string, args []byte) msg {
	c.send(to, appendQuery(nil, []byte("aa"), method, args))
	m, ok := c.recv(5 * time.Second)
	if !ok {
		c.t.Fatalf("no answer to %s", method)
	}
	return m
}

// TestTokens: announce_peer needs the token get_peers gave this address.
func TestTokens(t *testing.T) {
	n := newTestNode(t, testConfig())
	c := newRawClient(t)
	me, ih := RandomID(), RandomID()
	announce := func(tok []byte) msg {
		d := newDict()
		d.id("id", me)
		d.id("info_hash", ih)
		d.int("port", 6000)
		d.str("token", tok)
		return c.query(n.Addr(), "announce_peer", d.done())
	}
	if m := announce([]byte("12345678")); m.Y != 'e' || m.ErrCode != errProtocol {
		t.Fatalf("bad token: got %+v, want error 203", m)
	}
	d := newDict()
	d.id("id", me)
	d.id("info_hash", ih)
	r := c.query(n.Addr(), "get_peers", d.done())
	if r.Y != 'r' || len(r.Token) != tokenLen {
		t.Fatalf("get_peers: %+v", r)
	}
	if m := announce(r.Token); m.Y != 'r' {
		t.Fatalf("good token refused: %+v", m)
	}
	r = c.query(n.Addr(), "get_peers", d.done())
	if len(r.Values) != 1 || r.Values[0].Port() != 6000 {
		t.Fatalf("stored peer not returned: %+v", r.Values)
	}
	// a token is bound to an address and expires after two rotations
	tk := newTokens(time.Minute, time.Now())
	ip := netip.MustParseAddr("10.0.0.1")
	tok := tk.issue(ip)
	if tk.valid(tok, netip.MustParseAddr("10.0.0.2")) || !tk.valid(tok, ip) {
		t.Fatal("token bound to the wrong address")
	}
	now := time.Now()
	tk.tick(now.Add(61 * time.Second))
	if !tk.valid(tok, ip) {
		t.Fatal("token from the previous secret refused")
	}
	tk.tick(now.Add(122 * time.Second))
	if tk.valid(tok, ip) {
		t.Fatal("token older than two rotations accepted")
	}
	s, _ := n.Stats(context.Background())
	if s.BadToken != 1 || s.Announced != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestTablePersists: the routing table and id survive a restart.
func TestTablePersists(t *testing.T) {
	nodes := newTestDHT(t, 5)
	file := filepath.Join(t.TempDir(), "dht.json")
	c := testConfig(nodes[0].Addr().String())
	c.StateFile = file
	n, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	waitNodes(t, n, 4)
	id := n.ID()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	c.Bootstrap = []string{"127.0.0.1:9"} // the saved table alone must do
	n2 := newTestNode(t, c)
	if n2.ID() != id {
		t.Fatalf("id %v after restart, want %v", n2.ID(), id)
	}
	s, _ := n2.Stats(context.Background())
	if s.Nodes < 4 {
		t.Fatalf("%d nodes after restart, want 4", s.Nodes)
	}
	res, err := n2.GetPeers(context.Background(), RandomID(), LookupOptions{})
	if err != nil || res.Responded < 4 {
		t.Fatalf("lookup from the saved table: %+v %v", res, err)
	}
}

func waitNodes(t *testing.T, n *Node, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, err := n.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if s.Nodes >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d nodes, want %d", s.Nodes, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestQueryFloodIsRateLimited: one address's flood is cut to the burst.
func TestQueryFloodIsRateLimited(t *testing.T) {
	c := testConfig()
	c.QueryRate, c.QueryBurst = 1, 20
	n := newTestNode(t, c)
	cl := newRawClient(t)
	d := newDict()
	d.id("id", RandomID())
	ping := appendQuery(nil, []byte("xy"), "ping", d.done())
	for range 500 {
		cl.send(n.Addr(), ping)
	}
	answers := 0
	for {
		if _, ok := cl.recv(300 * time.Millisecond); !ok {
			break
		}
		answers++
	}
	s, _ := n.Stats(context.Background())
	if answers > 25 || s.RateLimited < s.Received-25 {
		t.Fatalf("%d answers to 500 pings, %d rate-limited", answers, s.RateLimited)
	}
}

// TestPendingBounded: queries beyond MaxPending fail at once.
func TestPendingBounded(t *testing.T) {
	c := testConfig()
	c.MaxPending = 4
	c.QueryTimeout = 10 * time.Second
	n := newTestNode(t, c)
	silent := newRawClient(t) // never answers
	to := silent.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	errs := make(chan error, 10)
	n.loop.Post(func() {
		for range 10 {
			d := newDict()
			d.id("id", n.self)
			n.query(to, "ping", d.done(), func(_ *msg, err error) { errs <- err })
		}
	})
	for range 6 {
		if err := <-errs; !errors.Is(err, errBusy) {
			t.Fatalf("err %v, want errBusy", err)
		}
	}
	s, _ := n.Stats(context.Background())
	if s.Pending > 4 || s.Busy < 6 {
		t.Fatalf("stats %+v", s)
	}
}

// TestQueryTimeoutFromWatchdog: an unanswered query fails when the
// watchdog reports its packet overdue.
func TestQueryTimeoutFromWatchdog(t *testing.T) {
	c := testConfig()
	c.QueryTimeout = 100 * time.Millisecond
	c.Tick = time.Hour // only the watchdog's alert can end it
	n := newTestNode(t, c)
	silent := newRawClient(t)
	to := silent.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	errs := make(chan error, 1)
	n.loop.Post(func() {
		d := newDict()
		d.id("id", n.self)
		n.query(to, "ping", d.done(), func(_ *msg, err error) { errs <- err })
	})
	select {
	case err := <-errs:
		if !errors.Is(err, errTimeout) {
			t.Fatalf("err %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("query never timed out")
	}
}

// TestPublicBootstrapRefusedInTests: the guard.
func TestPublicBootstrapRefusedInTests(t *testing.T) {
	c := DefaultConfig()
	c.Listen = "127.0.0.1:0"
	for _, boot := range [][]string{nil, {"router.bittorrent.com:6881"}, {"example.invalid:6881"}} {
		c.Bootstrap = boot
		if n, err := New(c); !errors.Is(err, ErrPublicInTest) {
			if n != nil {
				n.Close()
			}
			t.Fatalf("bootstrap %v: err %v, want ErrPublicInTest", boot, err)
		}
	}
}

// TestIPv6DHT (BEP 32): a DHT on ::1 exchanges "nodes6" and IPv6 peers.
func TestIPv6DHT(t *testing.T) {
	nodes := newTestDHTOn(t, 6, "::1")
	ih := RandomID()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if res, err := nodes[1].GetPeers(ctx, ih, LookupOptions{Announce: true, Port: 7000}); err != nil || res.Announced == 0 {
		t.Fatalf("announce: %+v %v", res, err)
	}
	res, err := nodes[4].GetPeers(ctx, ih, LookupOptions{})
	want := netip.MustParseAddrPort("[::1]:7000")
	if err != nil || len(res.Peers) == 0 || res.Peers[0] != want {
		t.Fatalf("lookup: %+v %v, want %v", res, err, want)
	}
}

// TestDualStackNodeJoinsIPv4DHT: a node on [::] (IPv4 and IPv6 on one
// socket) works with IPv4 nodes: its IPv4-mapped sources are unmapped.
func TestDualStackNodeJoinsIPv4DHT(t *testing.T) {
	nodes := newTestDHT(t, 5)
	c := testConfig(nodes[0].Addr().String())
	c.Listen = "[::]:0"
	dual := newTestNode(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ih := RandomID()
	if res, err := dual.GetPeers(ctx, ih, LookupOptions{Announce: true, Port: 7100}); err != nil || res.Announced == 0 {
		t.Fatalf("announce from the dual-stack node: %+v %v", res, err)
	}
	res, err := nodes[3].GetPeers(ctx, ih, LookupOptions{})
	want := netip.MustParseAddrPort("127.0.0.1:7100")
	if err != nil || len(res.Peers) == 0 || res.Peers[0] != want {
		t.Fatalf("lookup: %+v %v, want %v", res, err, want)
	}
}

// TestStatsCountQueries: a lookup with an announce shows in the figures
// /metrics exports: queries by method, peers found, announces made.
func TestStatsCountQueries(t *testing.T) {
	nodes := newTestDHT(t, 10)
	ih := RandomID()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if res, err := nodes[2].GetPeers(ctx, ih, LookupOptions{Announce: true, Port: 7000}); err != nil || res.Announced == 0 {
		t.Fatalf("announce: %+v %v", res, err)
	}
	res, err := nodes[6].GetPeers(ctx, ih, LookupOptions{})
	if err != nil || len(res.Peers) == 0 {
		t.Fatalf("lookup: %+v %v", res, err)
	}
	a, _ := nodes[2].Stats(ctx)
	b, _ := nodes[6].Stats(ctx)
	if q := a.Queries["announce_peer"]; q.Sent == 0 || q.Answered == 0 || a.AnnouncesMade != int64(q.Answered) {
		t.Errorf("announcer: announce_peer %+v, announces made %d", q, a.AnnouncesMade)
	}
	if q := b.Queries["get_peers"]; q.Sent < int64(res.Queries) || q.Answered == 0 || b.PeersFound < int64(len(res.Peers)) || b.Lookups == 0 {
		t.Errorf("looker: get_peers %+v, peers found %d, lookups %d; lookup %+v", q, b.PeersFound, b.Lookups, res)
	}
	if b.Sent == 0 || b.Received == 0 || b.Nodes == 0 {
		t.Errorf("looker: %+v", b)
	}
}

// TestListenFallback: a node whose port is taken binds the fallback
// address instead, and without one says the port is in use.
func TestListenFallback(t *testing.T) {
	busy, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	c := testConfig()
	c.Listen = busy.LocalAddr().String()
	if n, err := New(c); err == nil {
		n.Close()
		t.Fatal("a busy port without a fallback was bound")
	}
	c.ListenFallback = "127.0.0.1:0"
	n := newTestNode(t, c)
	if n.Addr().Port() == busy.LocalAddr().(*net.UDPAddr).AddrPort().Port() || n.Addr().Port() == 0 {
		t.Fatalf("bound %v", n.Addr())
	}
}

// TestTestenvSetsNoPublic: internal/testenv (imported by this package's
// interop test) marks the environment with EnvNoPublic, so the programs
// tests start inherit the guard.
func TestTestenvSetsNoPublic(t *testing.T) {
	if os.Getenv(EnvNoPublic) == "" {
		t.Fatalf("%s is not set in a test binary that imports internal/testenv", EnvNoPublic)
	}
}
