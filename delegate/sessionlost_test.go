package delegate

import (
	"testing"
	"time"

	"flotilla/internal/testenv"
	"flotilla/swarm/swarmtest"
)

// OnSessionLost fires once when a session is lost (the coordinator's
// connection dropped without a Stop), with the coordinator's name; never
// for a Stop or for the server's own Close.
func TestOnSessionLost(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	lost := make(chan string, 8)
	ts := newTestServer(t, transports[1], tt, func(c *ServerConfig) {
		c.OnSessionLost = func(coord string) { lost <- coord }
	})
	noCall := func(what string) {
		t.Helper()
		select {
		case c := <-lost:
			t.Errorf("OnSessionLost(%q) after %s", c, what)
		case <-time.After(300 * time.Millisecond):
		}
	}

	r1, err := dial(t, ts, testKey(1), jobSpec(tt), testClientConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	r1.sess.sess.Close() // the coordinator died
	select {
	case c := <-lost:
		if want := testClientConfig(t).Name; c != want {
			t.Errorf("OnSessionLost(%q), want the coordinator's name %q", c, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnSessionLost not called for a lost session")
	}
	noCall("the lost session (called twice)")

	r2, err := dial(t, ts, testKey(1), jobSpec(tt), testClientConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	stops := ts.Stats().Stops
	r2.Close() // Stop
	testenv.WaitFor(t, 10*time.Second, "the Stop reached the node", func() bool { return ts.Stats().Stops > stops })
	noCall("the coordinator's Stop")

	if _, err := dial(t, ts, testKey(1), jobSpec(tt), testClientConfig(t)); err != nil {
		t.Fatal(err)
	}
	ts.Close()
	noCall("the server's Close")
}
