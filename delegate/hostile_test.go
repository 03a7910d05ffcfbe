package delegate

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"flotilla/swarm"
	"flotilla/swarm/swarmtest"
)

// rawNode is a scriptable node for testing the coordinator against a
// misbehaving (but authenticated) peer: it completes the handshake,
// accepts the job and then runs script.
func rawNode(t testing.TB, script func(sess *yamux.Session, ctrl net.Conn, job *jobMsg)) (net.Conn, chan struct{}) {
	t.Helper()
	return rawNodeNamed(t, "evil", script)
}

// rawNodeNamed is rawNode with a name in the hello.
func rawNodeNamed(t testing.TB, name string, script func(sess *yamux.Session, ctrl net.Conn, job *jobMsg)) (net.Conn, chan struct{}) {
	t.Helper()
	c1, c2 := memPipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer c2.Close()
		creds, err := deriveCredentials(testKey(1))
		if err != nil {
			t.Error(err)
			return
		}
		tc, _, _, err := handshake(context.Background(), c2, creds, true, helloMsg{Version: ProtocolVersion, MinVersion: MinProtocolVersion, Role: RoleNode, Name: name}, 30*time.Second, handshakeHooks{})
		if err != nil {
			t.Error(err)
			return
		}
		sess, err := yamux.Server(tc, DefaultSessionConfig().yamux(swarmtest.Logger(t, slog.LevelWarn)))
		if err != nil {
			t.Error(err)
			return
		}
		defer sess.Close()
		ctrl, err := sess.AcceptStream()
		if err != nil {
			t.Error(err)
			return
		}
		typ, body, err := readControlFrame(ctrl, fromCoordinator)
		if err != nil || typ != MsgJob {
			t.Errorf("job: %v %v", typ, err)
			return
		}
		var job jobMsg
		if err := decodeBody(typ, body, &job); err != nil {
			t.Error(err)
			return
		}
		f, _ := encodeFrame(MsgJobAccepted, &jobAcceptedMsg{Job: job.Job})
		ctrl.Write(f)
		script(sess, ctrl, &job)
	}()
	return c1, done
}

func writeFrame(t testing.TB, w net.Conn, typ MsgType, v any) {
	t.Helper()
	f, err := encodeFrame(typ, v)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(f)
}

// expectFailed waits for EventFailed wrapping want.
func expectFailed(t *testing.T, r *RemoteSwarm, want error) []swarm.WorkerEvent {
	t.Helper()
	var before []swarm.WorkerEvent
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-r.Events():
			if !ok {
				t.Fatalf("events closed without EventFailed: %v", r.Err())
			}
			if ev.Kind != swarm.EventFailed {
				if ev.Kind == swarm.EventPiece {
					r.Release(ev.Piece) // we play the sub-chief
				}
				before = append(before, ev)
				continue
			}
			if !errors.Is(ev.Err, want) {
				t.Fatalf("failed with %v, want %v", ev.Err, want)
			}
			t.Log(ev.Err)
			return before
		case <-timeout:
			t.Fatal("no EventFailed")
		}
	}
}

func TestHostileNode(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	good := func(i int) []byte { return tt.Piece(i) }
	cases := []struct {
		name   string
		want   error
		script func(t *testing.T, sess *yamux.Session, ctrl net.Conn, job *jobMsg)
	}{
		{"wrong length", ErrProtocol, func(t *testing.T, sess *yamux.Session, _ net.Conn, job *jobMsg) {
			st, _ := sess.OpenStream()
			writeFrame(t, st, MsgPiece, &pieceHeader{Job: job.Job, Index: 0, Length: 100})
			st.Write(make([]byte, 100))
		}},
		{"index out of range", ErrProtocol, func(t *testing.T, sess *yamux.Session, _ net.Conn, job *jobMsg) {
			st, _ := sess.OpenStream()
			writeFrame(t, st, MsgPiece, &pieceHeader{Job: job.Job, Index: 1000, Length: 64 << 10})
		}},
		{"other job", ErrProtocol, func(t *testing.T, sess *yamux.Session, _ net.Conn, job *jobMsg) {
			st, _ := sess.OpenStream()
			writeFrame(t, st, MsgPiece, &pieceHeader{Job: job.Job + 1, Index: 0, Length: 64 << 10})
		}},
		{"control message on data stream", ErrProtocol, func(t *testing.T, sess *yamux.Session, _ net.Conn, job *jobMsg) {
			st, _ := sess.OpenStream()
			writeFrame(t, st, MsgStatus, &statusMsg{Job: job.Job})
		}},
		{"truncated piece", ErrSessionLost, func(t *testing.T, sess *yamux.Session, _ net.Conn, job *jobMsg) {
			st, _ := sess.OpenStream()
			writeFrame(t, st, MsgPiece, &pieceHeader{Job: job.Job, Index: 0, Length: 64 << 10})
			st.Write(good(0)[:1000])
			st.Close()
		}},
		{"coordinator message from node", ErrProtocol, func(t *testing.T, _ *yamux.Session, ctrl net.Conn, job *jobMsg) {
			writeFrame(t, ctrl, MsgAssign, &piecesMsg{Job: job.Job, Pieces: []uint32{1}})
		}},
		{"unknown type", ErrProtocol, func(t *testing.T, _ *yamux.Session, ctrl net.Conn, job *jobMsg) {
			ctrl.Write(rawFrame(MsgType(200), []byte{0x80}))
		}},
		{"garbage body", ErrProtocol, func(t *testing.T, _ *yamux.Session, ctrl net.Conn, job *jobMsg) {
			ctrl.Write(rawFrame(MsgStatus, []byte{0xdd, 0xff, 0xff, 0xff, 0xff}))
		}},
		{"too many data streams", ErrProtocol, func(t *testing.T, sess *yamux.Session, _ net.Conn, job *jobMsg) {
			for range 9 {
				if _, err := sess.OpenStream(); err != nil {
					return
				}
			}
		}},
		{"failed", ErrRemoteFailed, func(t *testing.T, _ *yamux.Session, ctrl net.Conn, job *jobMsg) {
			writeFrame(t, ctrl, MsgFailed, &failedMsg{Job: job.Job, Err: "boom"})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			release := make(chan struct{})
			conn, done := rawNode(t, func(sess *yamux.Session, ctrl net.Conn, job *jobMsg) {
				c.script(t, sess, ctrl, job)
				select {
				case <-release:
				case <-sess.CloseChan():
				}
			})
			r, err := Client(context.Background(), conn, testKey(1), jobSpec(tt), testClientConfig(t))
			if err != nil {
				t.Fatal(err)
			}
			expectFailed(t, r, c.want)
			r.Close()
			close(release)
			<-done
		})
	}
}

// Revoked lists are filtered to the torrent's pieces; a good piece from a
// scripted node arrives unverified.
func TestScriptedNodeGood(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	release := make(chan struct{})
	conn, done := rawNode(t, func(sess *yamux.Session, ctrl net.Conn, job *jobMsg) {
		writeFrame(t, ctrl, MsgRevoked, &piecesMsg{Job: job.Job, Pieces: []uint32{2, 99999, 3}})
		writeFrame(t, ctrl, MsgRevoked, &piecesMsg{Job: job.Job, Kept: []uint32{99999, 4}})
		writeFrame(t, ctrl, MsgStatus, &statusMsg{Job: job.Job + 1, Peers: 77}) // other job: ignored
		st, _ := sess.OpenStream()
		writeFrame(t, st, MsgPiece, &pieceHeader{Job: job.Job, Index: 5, Length: 64 << 10})
		st.Write(tt.Piece(5))
		<-release
	})
	r, err := Client(context.Background(), conn, testKey(1), jobSpec(tt), testClientConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	ev := <-r.Events()
	if ev.Kind != swarm.EventRevoked || !slices.Equal(ev.Pieces, []int{2, 3}) || len(ev.Kept) != 0 {
		t.Fatalf("%+v", ev)
	}
	if ev = <-r.Events(); ev.Kind != swarm.EventRevoked || len(ev.Pieces) != 0 || !slices.Equal(ev.Kept, []int{4}) {
		t.Fatalf("an answer giving nothing back: %+v; want Kept [4]", ev)
	}
	got, _ := collect(t, r, tt, 1, 5*time.Second)
	if !got[5] || r.Status().Peers != 0 {
		t.Fatalf("got %v status %+v", got, r.Status())
	}
	close(release)
	r.Close()
	<-done
}
