package dht

import (
	"context"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testConfig is a loopback node joining through boot.
func testConfig(boot ...string) Config {
	c := DefaultConfig()
	c.Listen = "127.0.0.1:0"
	c.Bootstrap = boot
	c.QueryTimeout = 500 * time.Millisecond
	c.Tick = 50 * time.Millisecond
	c.QueryRate = 0 // every node of a local DHT shares 127.0.0.1
	if os.Getenv("DHT_DEBUG") != "" {
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if len(boot) == 0 {
		c.Bootstrap = []string{"127.0.0.1:9"} // nobody: a first node
	}
	return c
}

func newTestNode(t testing.TB, c Config) *Node {
	t.Helper()
	n, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// newTestDHT starts size nodes, each joining through the first, and waits
// until every node knows at least min(size-1, K) others.
func newTestDHT(t testing.TB, size int) []*Node {
	t.Helper()
	return newTestDHTOn(t, size, "127.0.0.1")
}

// newTestDHTOn is newTestDHT on another loopback address ("::1").
func newTestDHTOn(t testing.TB, size int, ip string) []*Node {
	t.Helper()
	on := func(c Config) Config {
		c.Listen = net.JoinHostPort(ip, "0")
		return c
	}
	first := newTestNode(t, on(testConfig(net.JoinHostPort(ip, "9"))))
	nodes := []*Node{first}
	for len(nodes) < size {
		nodes = append(nodes, newTestNode(t, on(testConfig(first.Addr().String()))))
	}
	want := min(size-1, 8)
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range nodes {
		for {
			s, err := n.Stats(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if s.Nodes >= want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %v knows %d nodes, want %d", n.Addr(), s.Nodes, want)
			}
			// a node joins through find_node lookups; another lookup for a
			// random id speeds the wait along
			n.loop.Post(func() { n.startLookup(RandomID(), false, LookupOptions{}, nil) })
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nodes
}
