package delegate

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"flotilla/internal/testenv"
	"flotilla/swarm/swarmtest"
)

func TestCredentialsDeterministic(t *testing.T) {
	a, err := deriveCredentials(testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := deriveCredentials(testKey(1))
	c, _ := deriveCredentials(testKey(2))
	if !bytes.Equal(a.cert.Certificate[0], b.cert.Certificate[0]) {
		t.Fatal("same key gave different certificates")
	}
	if bytes.Equal(a.pub, c.pub) {
		t.Fatal("different keys gave the same public key")
	}
	if err := a.verifyPeer(b.cert.Certificate, nil); err != nil {
		t.Fatalf("own certificate refused: %v", err)
	}
	if err := a.verifyPeer(c.cert.Certificate, nil); !errors.Is(err, errKeyMismatch) {
		t.Fatalf("foreign certificate: %v", err)
	}
	if err := a.verifyPeer(nil, nil); err == nil {
		t.Fatal("no certificate accepted")
	}
	if tlsPurpose != "flotilla delegate tls v1" {
		t.Fatalf("purpose %q differs from spec.md", tlsPurpose)
	}
	var zero [32]byte
	if _, err := deriveCredentials(zero); !errors.Is(err, ErrConfig) {
		t.Fatalf("zero key: %v", err)
	}
}

func TestHandshake(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 100<<10, 16<<10)
	for _, tr := range allTransports {
		t.Run(tr.name, func(t *testing.T) {
			ts := newTestServer(t, tr, tt, nil)
			r := mustDial(t, ts, tt)
			if r.Name() != "node1" || r.Version() != ProtocolVersion {
				t.Fatalf("name %q version %d", r.Name(), r.Version())
			}
			if id := r.PeerID(); !bytes.HasPrefix(id[:], []byte("-FL0001-")) {
				t.Fatalf("peer id %q", id)
			}
			st := ts.Stats()
			if st.Sessions != 1 || st.Jobs != 1 || st.AuthFailures != 0 {
				t.Fatalf("stats %+v", st)
			}
			ts.factory.worker(t, 0)
			ts.factory.mu.Lock()
			job := ts.factory.jobs[0]
			ts.factory.mu.Unlock()
			if job.InfoHash != tt.InfoHash || job.Info.NumPieces() != tt.Info.NumPieces() || job.Coordinator != "coordinator" {
				t.Fatalf("job %+v", job)
			}
		})
	}
}

// A coordinator and a node whose cluster keys differ fail the handshake
// with ErrAuth, whichever side has the other key, and the node counts an
// authentication failure, not a session.
func TestWrongKey(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 100<<10, 16<<10)
	for _, c := range []struct {
		name              string
		coordKey, nodeKey byte
	}{
		{"coordinator", 2, 1},
		{"node", 1, 3},
	} {
		for _, tr := range transports {
			t.Run(c.name+"/"+tr.name, func(t *testing.T) {
				ts := newTestServer(t, tr, tt, func(cfg *ServerConfig) { cfg.Key = testKey(c.nodeKey) })
				_, err := dial(t, ts, testKey(c.coordKey), jobSpec(tt), testClientConfig(t))
				if !errors.Is(err, ErrAuth) {
					t.Fatalf("dial with the wrong key: %v, want ErrAuth", err)
				}
				t.Log(err)
				testenv.WaitFor(t, 5*time.Second, "server counts the auth failure", func() bool { return ts.Stats().AuthFailures == 1 })
				if st := ts.Stats(); st.Sessions != 0 || st.Jobs != 0 || st.HandshakeFailures != 0 {
					t.Fatalf("stats %+v", st)
				}
			})
		}
	}
}

// A client that skips TLS and sends a well-formed plaintext hello gets
// nothing decoded: the server fails it in the TLS handshake.
func TestPlaintextRefused(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 100<<10, 16<<10)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			ts := newTestServer(t, tr, tt, nil)
			c := ts.conn(t)
			defer c.Close()
			f, _ := encodeFrame(MsgHello, &helloMsg{Version: 1, MinVersion: 1, Role: RoleCoordinator})
			c.SetDeadline(time.Now().Add(5 * time.Second))
			go c.Write(f)
			c.Read(make([]byte, 64)) // the server's alert, or EOF
			testenv.WaitFor(t, 5*time.Second, "server counts the auth failure", func() bool { return ts.Stats().AuthFailures == 1 })
			if st := ts.Stats(); st.Sessions != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestVersionMismatch(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 100<<10, 16<<10)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			ts := newTestServer(t, tr, tt, func(c *ServerConfig) { c.version, c.minVersion = 5, 4 })
			_, err := dial(t, ts, testKey(1), jobSpec(tt), testClientConfig(t))
			if !errors.Is(err, ErrVersion) || errors.Is(err, ErrAuth) {
				t.Fatalf("%v, want ErrVersion", err)
			}
			t.Log(err)
			testenv.WaitFor(t, 5*time.Second, "server counts the failure", func() bool { return ts.Stats().HandshakeFailures == 1 })
			if st := ts.Stats(); st.Sessions != 0 || st.Jobs != 0 {
				t.Fatalf("stats %+v", st)
			}
			// A peer that still speaks our version is fine.
			cfg := testClientConfig(t)
			cfg.version, cfg.minVersion = 4, 2
			r, err := dial(t, ts, testKey(1), jobSpec(tt), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if r.Version() != 4 {
				t.Fatalf("negotiated %d, want 4", r.Version())
			}
		})
	}
}

func TestNegotiate(t *testing.T) {
	for _, c := range []struct {
		lmin, lmax, pmin, pmax, want uint16
		ok                           bool
	}{
		{1, 1, 1, 1, 1, true}, {1, 3, 2, 5, 3, true}, {2, 3, 1, 1, 0, false},
		{1, 1, 2, 2, 0, false}, {1, 4, 3, 2, 0, false},
	} {
		v, err := negotiate(helloMsg{MinVersion: c.lmin, Version: c.lmax}, helloMsg{MinVersion: c.pmin, Version: c.pmax})
		if (err == nil) != c.ok || v != c.want || (err != nil && !errors.Is(err, ErrVersion)) {
			t.Errorf("%+v: got %d, %v", c, v, err)
		}
	}
}

func TestHandshakeTimeout(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 100<<10, 16<<10)
	ts := newTestServer(t, transports[1], tt, func(c *ServerConfig) { c.HandshakeTimeout = 200 * time.Millisecond })
	c := ts.conn(t) // says nothing
	defer c.Close()
	testenv.WaitFor(t, 5*time.Second, "silent client dropped", func() bool { return ts.Stats().HandshakeFailures == 1 })

	// A coordinator dialing a listener that never answers gives up.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testClientConfig(t)
	cfg.HandshakeTimeout = 200 * time.Millisecond
	start := time.Now()
	_, err = Dial(context.Background(), ln.Addr().String(), testKey(1), jobSpec(tt), cfg)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v, want a deadline error", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultClientConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultServerConfig()
	if err := cfg.Validate(); !errors.Is(err, ErrConfig) {
		t.Fatalf("server config without key: %v", err)
	}
	cfg.Key = testKey(1)
	if err := cfg.Validate(); !errors.Is(err, ErrConfig) {
		t.Fatalf("server config without DataDir: %v", err)
	}
	cfg.DataDir = t.TempDir()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cc := DefaultClientConfig()
	cc.Session.StreamWindow = 1
	if err := cc.Validate(); !errors.Is(err, ErrConfig) {
		t.Fatalf("tiny window: %v", err)
	}
}

// A TLS client without a certificate (or with a self-made one) is
// refused by the node.
func TestNodeRequiresClientCert(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 100<<10, 16<<10)
	ts := newTestServer(t, transports[1], tt, nil)
	other, _ := deriveCredentials(testKey(9))
	for i, certs := range [][]tls.Certificate{nil, {other.cert}} {
		c := ts.conn(t)
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13,
			NextProtos: []string{alpnProto}, Certificates: certs})
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		err := tc.Handshake()
		if err == nil {
			// TLS 1.3: the client may finish before the server's verdict.
			_, err = tc.Read(make([]byte, 1))
		}
		if err == nil {
			t.Fatalf("case %d: session accepted", i)
		}
		c.Close()
		testenv.WaitFor(t, 5*time.Second, "refusal counted", func() bool { return ts.Stats().AuthFailures == int64(i+1) })
	}
	if st := ts.Stats(); st.Sessions != 0 {
		t.Fatalf("stats %+v", st)
	}
}
