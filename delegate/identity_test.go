package delegate

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"

	"flotilla/internal/testenv"
	"flotilla/swarm/swarmtest"
)

// A cluster member that holds the cluster key but not the coordinator key
// (a compromised swarm node) cannot command a node that was given the
// coordinator's public key: the node refuses the session before any
// message, and says why. Before protocol version 2 every key holder
// was obeyed.
func TestCoordinatorIdentity(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 100<<10, 16<<10)
	coord, err := GenerateCoordinatorKey()
	if err != nil {
		t.Fatal(err)
	}
	impostor, _ := GenerateCoordinatorKey()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			ts := newTestServer(t, tr, tt, func(c *ServerConfig) { c.CoordinatorPubKey = coord.Public().(ed25519.PublicKey) })
			for _, c := range []struct {
				what string
				key  ed25519.PrivateKey
			}{
				{"no coordinator key (derived from the cluster key)", nil},
				{"another coordinator key", impostor},
			} {
				cfg := testClientConfig(t)
				cfg.CoordinatorKey = c.key
				_, err := dial(t, ts, testKey(1), jobSpec(tt), cfg)
				if !errors.Is(err, ErrNotCoordinator) || !strings.Contains(err.Error(), CoordinatorFingerprint(coord.Public().(ed25519.PublicKey))) {
					t.Fatalf("%s: %v, want ErrNotCoordinator naming the key the node accepts", c.what, err)
				}
				t.Logf("%s: %v", c.what, err)
			}
			if st := ts.Stats(); st.Jobs != 0 || st.Sessions != 0 {
				t.Fatalf("an impostor got a session: %+v", st)
			}
			testenv.WaitFor(t, 5e9, "refusals counted", func() bool { return ts.Stats().AuthFailures == 2 })
			cfg := testClientConfig(t)
			cfg.CoordinatorKey = coord
			r, err := dial(t, ts, testKey(1), jobSpec(tt), cfg)
			if err != nil {
				t.Fatalf("the real coordinator: %v", err)
			}
			r.Assign([]int{0})
			collect(t, r, tt, 1, 5e9)
		})
	}
	// Without a public key the node obeys the key derived from the
	// cluster key, and refuses a coordinator key it was not told about.
	ts := newTestServer(t, transports[1], tt, nil)
	if _, err := dial(t, ts, testKey(1), jobSpec(tt), testClientConfig(t)); err != nil {
		t.Fatalf("derived key: %v", err)
	}
	cfg := testClientConfig(t)
	cfg.CoordinatorKey = coord
	if _, err := dial(t, ts, testKey(1), jobSpec(tt), cfg); !errors.Is(err, ErrNotCoordinator) || !strings.Contains(err.Error(), "derived from the cluster key") {
		t.Fatalf("unknown coordinator key: %v", err)
	}
}

// Version 1 peers are refused on both sides with a message that says why.
func TestVersion1Refused(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 100<<10, 16<<10)
	ts := newTestServer(t, transports[1], tt, func(c *ServerConfig) { c.version, c.minVersion = 1, 1 })
	_, err := dial(t, ts, testKey(1), jobSpec(tt), testClientConfig(t))
	if !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "version 1") {
		t.Fatalf("version 1 node: %v, want ErrVersion naming version 1", err)
	}
	t.Log(err)
	ts2 := newTestServer(t, transports[1], tt, nil)
	cfg := testClientConfig(t)
	cfg.version, cfg.minVersion = 1, 1
	if _, err := dial(t, ts2, testKey(1), jobSpec(tt), cfg); !errors.Is(err, ErrVersion) {
		t.Fatalf("version 1 coordinator: %v, want ErrVersion", err)
	}
	testenv.WaitFor(t, 5e9, "the node counts the version 1 coordinator", func() bool { return ts2.Stats().HandshakeFailures == 1 })
	if st := ts2.Stats(); st.Sessions != 0 || st.Jobs != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCoordinatorKeyText(t *testing.T) {
	k, err := GenerateCoordinatorKey()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := ParseCoordinatorKey(CoordinatorKeyText(k) + "\n")
	if err != nil || !k.Equal(k2) {
		t.Fatalf("private key round trip: %v", err)
	}
	pub := k.Public().(ed25519.PublicKey)
	p2, err := ParseCoordinatorPubKey(CoordinatorPubKeyText(pub))
	if err != nil || !pub.Equal(p2) {
		t.Fatalf("public key round trip: %v", err)
	}
	if _, err := ParseCoordinatorPubKey(CoordinatorKeyText(k)); !errors.Is(err, ErrBadCoordinatorKey) || !strings.Contains(err.Error(), "private") {
		t.Fatalf("private key given as public: %v", err)
	}
	if _, err := ParseCoordinatorKey("flotilla-coordinator-key-v1:AAAA"); !errors.Is(err, ErrBadCoordinatorKey) {
		t.Fatalf("short key: %v", err)
	}
	env := map[string]string{CoordinatorKeyEnv: CoordinatorKeyText(k), CoordinatorPubKeyEnv: CoordinatorPubKeyText(pub)}
	if got, err := LoadCoordinatorKey("", func(s string) string { return env[s] }); err != nil || !k.Equal(got) {
		t.Fatalf("load from env: %v", err)
	}
	if got, err := LoadCoordinatorPubKey("", func(s string) string { return env[s] }); err != nil || !pub.Equal(got) {
		t.Fatalf("load pub from env: %v", err)
	}
	if got, err := LoadCoordinatorKey("", func(string) string { return "" }); err != nil || got != nil {
		t.Fatalf("no key: %v %v", got, err)
	}
}
