package delegate

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"flotilla/internal/testenv"
	"flotilla/swarm/swarmtest"
)

// dialFrom opens a TCP connection to addr from the loopback address src.
func dialFrom(t testing.TB, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Idle connections from strangers (no key, not a byte sent) cannot lock
// the coordinator out: they wait in a handshake budget of their own, per
// address and in all, and the oldest gives way. Before the fix 16 idle
// connections took every session slot and the coordinator was told
// "peer not authenticated with the cluster key".
func TestStrangersCannotTakeSlots(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 100<<10, 16<<10)
	ts := newTestServer(t, transports[1], tt, nil)
	addr := ts.Addr().String()
	var strangers []net.Conn
	for i := range 40 {
		src := "127.0.0.1" // the coordinator's own address too
		if i >= 8 {
			src = "127.0.0." + string(rune('2'+i%8))
		}
		strangers = append(strangers, dialFrom(t, src, addr))
	}
	testenv.WaitFor(t, 5*time.Second, "the server takes every stranger", func() bool { return ts.Stats().Conns == 40 })
	r, err := dial(t, ts, testKey(1), jobSpec(tt), testClientConfig(t))
	if err != nil {
		t.Fatalf("coordinator locked out by %d idle strangers: %v", len(strangers), err)
	}
	r.Assign([]int{0})
	collect(t, r, tt, 1, 5*time.Second)
	st := ts.Stats()
	t.Logf("stats %+v", st)
	if st.Jobs != 1 || st.Sessions != 1 || st.Evicted < 40-16 {
		t.Fatalf("stats %+v", st)
	}
}

// MaxSessions counts authenticated sessions only, and a coordinator over
// it is told so: ErrRefused naming the limit, not ErrAuth.
func TestMaxSessions(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 100<<10, 16<<10)
	ts := newTestServer(t, transports[1], tt, func(c *ServerConfig) { c.MaxSessions = 1 })
	r1 := mustDial(t, ts, tt)
	_, err := dial(t, ts, testKey(1), jobSpec(tt), testClientConfig(t))
	if !errors.Is(err, ErrRefused) || errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "too many sessions") {
		t.Fatalf("second session: %v, want ErrRefused (too many sessions)", err)
	}
	t.Log(err)
	r1.Close()
	testenv.WaitFor(t, 5*time.Second, "the first session ends", func() bool { return ts.Stats().ActiveSessions == 0 })
	r3, err := dial(t, ts, testKey(1), jobSpec(tt), testClientConfig(t))
	if err != nil {
		t.Fatalf("after the first session ended: %v", err)
	}
	r3.Close()
	if st := ts.Stats(); st.Refused != 1 || st.AuthFailures != 0 || st.Sessions != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// A node that closes the connection without a word (it refuses
// connections) is reported as a refusal, not as a key mismatch.
func TestClosedHandshakeNotAuth(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 100<<10, 16<<10)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, err = Dial(context.Background(), ln.Addr().String(), testKey(1), jobSpec(tt), testClientConfig(t))
	if !errors.Is(err, ErrRefused) || errors.Is(err, ErrAuth) {
		t.Fatalf("%v, want ErrRefused", err)
	}
	t.Log(err)
	ln.Close()
	<-done
}

func TestSourceIP(t *testing.T) {
	for addr, want := range map[string]string{
		"10.0.0.1:5":               "10.0.0.1",
		"[::ffff:10.0.0.1]:5":      "10.0.0.1",
		"[2001:db8:1:2:3:4:5:6]:7": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:7": "2001:db8:1:2::/64",
		"mem-a-peer":               "mem-a-peer",
	} {
		if got := sourceIP(fakeAddr(addr)); got != want {
			t.Errorf("%s: %q, want %q", addr, got, want)
		}
	}
}

type fakeAddr string

func (a fakeAddr) Network() string { return "tcp" }
func (a fakeAddr) String() string  { return string(a) }
