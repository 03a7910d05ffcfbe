package delegate

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"flotilla/internal/testenv"
	"flotilla/swarm/swarmtest"
)

// rawCoordinator is a scriptable coordinator holding the cluster key: it
// completes the handshake with ts and opens the control stream.
func rawCoordinator(t *testing.T, ts *testServer) (*yamux.Session, *yamux.Stream) {
	t.Helper()
	conn := ts.conn(t)
	creds, err := deriveCredentials(testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	tc, _, _, err := handshake(context.Background(), conn, creds, false, testClientConfig(t).hello(), 5*time.Second, handshakeHooks{sign: DerivedCoordinatorKey(testKey(1))})
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	sess, err := yamux.Client(tc, DefaultSessionConfig().yamux(swarmtest.Logger(t, slog.LevelWarn)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	ctrl, err := sess.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	return sess, ctrl
}

// bombJob is a Job frame of about size bytes whose trackers declare one
// empty tier per byte: msgpack allocates 24 bytes per tier.
func bombJob(size int) []byte {
	n := size - 64
	body := []byte{0x81, 0xa8}
	body = append(body, "trackers"...)
	body = append(body, 0xdd, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(body[len(body)-4:], uint32(n))
	body = append(body, bytes.Repeat([]byte{0x90}, n)...)
	return rawFrame(MsgJob, body)
}

func totalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// A key holder cannot make either side allocate far more than a frame:
// a 31 MiB Job whose trackers declare 31 million tiers is refused by the
// coordinator from its header (a node never sends a Job), and by a node
// (which may get a Job) before msgpack allocates the tiers. Before the
// fix the coordinator allocated about 1.5 GiB.
func TestAllocationBomb(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	bomb := bombJob(31 << 20)

	t.Run("coordinator", func(t *testing.T) {
		release := make(chan struct{})
		conn, done := rawNode(t, func(_ *yamux.Session, ctrl net.Conn, _ *jobMsg) {
			go ctrl.Write(bomb)
			<-release
		})
		r, err := Client(context.Background(), conn, testKey(1), jobSpec(tt), testClientConfig(t))
		if err != nil {
			t.Fatal(err)
		}
		before := totalAlloc()
		expectFailed(t, r, ErrProtocol)
		grew := totalAlloc() - before
		r.Close()
		close(release)
		<-done
		t.Logf("coordinator allocated %d MiB while refusing the bomb", grew>>20)
		if grew > 16<<20 {
			t.Fatalf("coordinator allocated %d MiB for a %d MiB frame", grew>>20, len(bomb)>>20)
		}
	})

	t.Run("node", func(t *testing.T) {
		ts := newTestServer(t, transports[1], tt, nil)
		_, ctrl := rawCoordinator(t, ts)
		before := totalAlloc()
		ctrl.Write(bomb)
		testenv.WaitFor(t, 10*time.Second, "the node drops the session", func() bool {
			st := ts.Stats()
			return st.Sessions == 1 && st.ActiveSessions == 0
		})
		grew := totalAlloc() - before
		t.Logf("node allocated %d MiB while refusing the bomb", grew>>20)
		if grew > 80<<20 { // the frame itself (31 MiB) may be read, not decoded
			t.Fatalf("node allocated %d MiB for a %d MiB frame", grew>>20, len(bomb)>>20)
		}
		if ts.Stats().Jobs != 0 {
			t.Fatal("the bomb started a job")
		}
	})
}

// A frame of a type its sender never sends is refused from its five
// header bytes: the receiver does not wait for (or allocate) the body.
func TestWrongDirection(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	hdr := func(typ MsgType, n uint32) []byte {
		b := make([]byte, 5)
		binary.BigEndian.PutUint32(b, n)
		b[4] = byte(typ)
		return b
	}
	t.Run("node sends a Job", func(t *testing.T) {
		release := make(chan struct{})
		conn, done := rawNode(t, func(_ *yamux.Session, ctrl net.Conn, _ *jobMsg) {
			ctrl.Write(hdr(MsgJob, 31<<20)) // and never the body
			<-release
		})
		r, err := Client(context.Background(), conn, testKey(1), jobSpec(tt), testClientConfig(t))
		if err != nil {
			t.Fatal(err)
		}
		expectFailed(t, r, ErrProtocol)
		r.Close()
		close(release)
		<-done
	})
	t.Run("coordinator sends a Status", func(t *testing.T) {
		ts := newTestServer(t, transports[1], tt, nil)
		_, ctrl := rawCoordinator(t, ts)
		ctrl.Write(hdr(MsgStatus, 200<<10)) // and never the body
		testenv.WaitFor(t, 5*time.Second, "the node drops the session", func() bool {
			st := ts.Stats()
			return st.Sessions == 1 && st.ActiveSessions == 0
		})
	})
	// Every type from the side that never sends it, on a control stream.
	for typ := range MsgType(255) {
		for _, from := range []sender{fromCoordinator, fromNode} {
			if controlCap(typ, from) != 0 {
				continue
			}
			f := append(hdr(typ, 100<<10), make([]byte, 100<<10)...)
			cr := &countingReader{r: bytes.NewReader(f)}
			_, _, err := readControlFrame(cr, from)
			if !errors.Is(err, ErrProtocol) || cr.n != 5 {
				t.Fatalf("%v from %v: %v after %d bytes", typ, from, err, cr.n)
			}
		}
	}
}
