package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"flotilla/cluster"
	"flotilla/delegate"
	"flotilla/internal/testenv"
	"flotilla/swarm"
	"flotilla/swarm/swarmtest"
)

func runNode(args ...string) (int, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb, func(string) string { return "" })
	return code, out.String() + errb.String()
}

func TestUsageAndBadFlags(t *testing.T) {
	code, out := runNode("--help")
	if code != 0 {
		t.Fatalf("--help: %d", code)
	}
	for _, f := range []string{"-join", "-cluster-listen", "-cluster-key-file", "-advertise", "-listen", "-data"} {
		if !strings.Contains(out, f) {
			t.Errorf("--help does not explain %s", f)
		}
	}
	if code, out := runNode("--cluster-listen", "127.0.0.1:0"); code != 2 || !strings.Contains(out, "--join") {
		t.Errorf("missing --join: %d %q", code, out)
	}
	if code, out := runNode("--join", "127.0.0.1:7946", "--cluster-listen", "127.0.0.1:0"); code != 1 || !strings.Contains(out, "coord keygen") {
		t.Errorf("no key must say how to make one: %d %q", code, out)
	}
	if code, out := runNode("--join", "127.0.0.1:7946", "stray"); code != 2 || !strings.Contains(out, "stray") {
		t.Errorf("stray argument: %d %q", code, out)
	}
	if code, out := runNode("--join", "127.0.0.1:7946", "--max-jobs", "0"); code != 2 || !strings.Contains(out, "--max-jobs 0 must be positive") {
		t.Errorf("no job allowed: %d %q", code, out)
	}
}

type syncBuffer = testenv.SyncBuffer

// The cluster key may come from FLOTILLA_CLUSTER_KEY: with it the node
// joins a member holding the same key and advertises itself; a malformed
// one is a clear error that does not echo it.
func TestClusterKeyFromEnvironment(t *testing.T) {
	const secret = "s3cr3t-n0t-a-key"
	for _, bad := range []string{secret, cluster.KeyPrefix + secret, cluster.KeyPrefix + "AAAA"} {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"--join", "127.0.0.1:7946", "--cluster-listen", "127.0.0.1:0"}, &out, &errb,
			func(k string) string {
				if k == cluster.KeyEnv {
					return bad
				}
				return ""
			})
		msg := errb.String()
		if code != 1 || !strings.Contains(msg, cluster.KeyEnv+": bad cluster key") || strings.Count(msg, "\n") != 1 {
			t.Errorf("%s=%q: code %d, stderr %q; want one line naming the variable", cluster.KeyEnv, bad, code, msg)
		}
		if strings.Contains(msg, secret) {
			t.Errorf("the malformed key is echoed: %q", msg)
		}
	}

	key, err := cluster.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	seed := startCoordinatorMember(t, key, "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := startNode(ctx, key, "--name", "node-env", "--join", seed.Addr().String(), "--cluster-listen", "127.0.0.1:0",
		"--listen", "127.0.0.1:0", "--max-peers", "21", "--data", t.TempDir())
	codeCh, errb := p.code, &p.errb
	node := p.waitMember(t, seed, "node-env", "the node to join with the key from the environment")
	if node.Meta.Role != cluster.RoleSwarmNode || node.Meta.DelegateAddr == "" || node.Meta.Slots != 21 || node.Meta.Version != version {
		t.Errorf("the node advertises %+v", node.Meta)
	}
	testenv.WaitFor(t, 5*time.Second, "the node to say it joined", func() bool {
		return strings.Contains(errb.String(), "joined the cluster")
	})
	if strings.Contains(errb.String(), key.Text()) {
		t.Errorf("the key is printed:\n%s", errb.String())
	}
	cancel()
	select {
	case code := <-codeCh:
		if code != 0 {
			t.Errorf("stopped node: code %d\n%s", code, errb.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("swarmnode did not stop")
	}
}

// A swarm node given the coordinator's public key obeys only that
// coordinator: another holder of the cluster key (a compromised node) is
// refused, the coordinator gets its session.
func TestCoordinatorPubKey(t *testing.T) {
	key, err := cluster.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	coord, err := delegate.GenerateCoordinatorKey()
	if err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(t.TempDir(), "coordinator.pub")
	if err := os.WriteFile(pubFile, []byte(delegate.CoordinatorPubKeyText(coord.Public().(ed25519.PublicKey))+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	seed := startCoordinatorMember(t, key, "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := startNode(ctx, key, "--name", "node-pub", "--join", seed.Addr().String(), "--cluster-listen", "127.0.0.1:0",
		"--listen", "127.0.0.1:0", "--data", t.TempDir(), "--coordinator-pubkey-file", pubFile)
	codeCh, errb := p.code, &p.errb
	node := p.waitMember(t, seed, "node-pub", "the node to join")
	if strings.Contains(errb.String(), "warning: no coordinator public key") {
		t.Errorf("warned about a missing coordinator key that was given:\n%s", errb.String())
	}
	tor := swarmtest.NewTorrent(t, 64<<10, 16<<10) // 4 pieces; the content does not matter
	job := delegate.JobSpec{InfoHash: tor.InfoHash, InfoBytes: tor.InfoBytes}
	impostor := delegate.DefaultClientConfig() // cluster key only
	if _, err := delegate.Dial(ctx, node.Meta.DelegateAddr, key, job, impostor); !errors.Is(err, delegate.ErrNotCoordinator) {
		t.Fatalf("a cluster member without the coordinator key: %v, want ErrNotCoordinator", err)
	}
	real := delegate.DefaultClientConfig()
	real.CoordinatorKey = coord
	rs, err := delegate.Dial(ctx, node.Meta.DelegateAddr, key, job, real)
	if err != nil {
		t.Fatalf("the coordinator: %v", err)
	}
	rs.Close()
	cancel()
	if code := <-codeCh; code != 0 {
		t.Fatalf("swarmnode exited %d:\n%s", code, errb.String())
	}
}

// TestHelpAndVersion: flags are listed with two dashes, as coord lists
// them, and --version prints the build's version.
func TestHelpAndVersion(t *testing.T) {
	code, out := runNode("--help")
	if code != 0 || !strings.Contains(out, "\n  --join string\n") || strings.Contains(out, "\n  -join") {
		t.Errorf("--help (code %d) must list flags as \"  --join string\":\n%s", code, out)
	}
	if strings.Contains(out, "--cluster-key-file coord keygen") {
		t.Errorf("a backquoted word in a flag's usage became its placeholder:\n%s", out)
	}
	if code, out := runNode("--version"); code != 0 || out != "swarmnode "+version+"\n" || version == "" {
		t.Errorf("--version: code %d, %q", code, out)
	}
	if code, out := runNode("--frob"); code != 2 || out != "swarmnode: flag provided but not defined: -frob; run 'swarmnode --help' for its flags\n" {
		t.Errorf("bad flag: code %d, %q", code, out)
	}
}

// TestNodeFindsLateCoordinator: a node started before its coordinator
// keeps trying, never waiting more than a second between attempts, and
// joins once the coordinator is up (issue 15).
func TestNodeFindsLateCoordinator(t *testing.T) {
	key, err := cluster.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // the coordinator's address, nobody there yet
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := startNode(ctx, key, "--name", "node-early", "--join", addr, "--cluster-listen", "127.0.0.1:0",
		"--listen", "127.0.0.1:0", "--data", t.TempDir(), "-v")
	codeCh, errb := p.code, &p.errb
	// Enough failed attempts for the back-off to reach its cap.
	testenv.WaitFor(t, 20*time.Second, "the node to fail 5 joins", func() bool {
		return strings.Count(errb.String(), "join failed; will retry") >= 5
	})
	coord := startCoordinatorMember(t, key, addr)
	p.waitMember(t, coord, "node-early", "the node to join the late coordinator")
	waits := retryRE.FindAllStringSubmatch(errb.String(), -1)
	if len(waits) < 5 {
		t.Fatalf("%d join retries logged, want 5 or more:\n%s", len(waits), errb.String())
	}
	for _, m := range waits {
		if d, err := time.ParseDuration(m[1]); err != nil || d > time.Second {
			t.Errorf("the node waited %s between two join attempts; a late coordinator must be found within a second", m[1])
		}
	}
	cancel()
	if code := <-codeCh; code != 0 {
		t.Fatalf("swarmnode exited %d:\n%s", code, errb.String())
	}
}

var retryRE = regexp.MustCompile(`msg="join failed; will retry".* in=(\S+)`)

// Stopping the node (SIGTERM, Ctrl-C: run's context ends) leaves cleanly:
// the coordinator hears Leaving, gets back the pieces the node had not
// started, and the job ends with ErrNodeLeft; the node says so and exits
// 0.
func TestStopLeavesCleanly(t *testing.T) {
	key, err := cluster.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	seed := startCoordinatorMember(t, key, "127.0.0.1:0")
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	p := startNode(ctx, key, "--name", "node-leave", "--join", seed.Addr().String(), "--cluster-listen", "127.0.0.1:0",
		"--listen", "127.0.0.1:0", "--data", t.TempDir(), "--leave-timeout", "10s")
	codeCh, errb := p.code, &p.errb
	node := p.waitMember(t, seed, "node-leave", "the node to join")
	tor := swarmtest.NewTorrent(t, 64<<10, 16<<10) // 4 pieces; the content does not matter
	rs, err := delegate.Dial(context.Background(), node.Meta.DelegateAddr, key,
		delegate.JobSpec{InfoHash: tor.InfoHash, InfoBytes: tor.InfoBytes}, delegate.DefaultClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	all := make([]int, tor.Info.NumPieces())
	for i := range all {
		all[i] = i
	}
	rs.Assign(all) // no peer: nothing is started
	testenv.WaitFor(t, 5*time.Second, "the node to hold the lease", func() bool { return rs.Status().Leased == len(all) })
	stop()
	leaving, back := false, map[int]bool{}
	deadline := time.After(15 * time.Second)
	for ended := false; !ended; {
		select {
		case ev, ok := <-rs.Events():
			switch {
			case !ok:
				ended = true
			case ev.Kind == swarm.EventLeaving:
				leaving = true
			case ev.Kind == swarm.EventRevoked:
				for _, p := range ev.Pieces {
					back[p] = true
				}
			case ev.Kind == swarm.EventFailed:
				if !errors.Is(ev.Err, delegate.ErrNodeLeft) {
					t.Fatalf("job ended with %v, want ErrNodeLeft", ev.Err)
				}
			}
		case <-deadline:
			t.Fatalf("the job did not end after the node was stopped:\n%s", errb.String())
		}
	}
	if !leaving || len(back) != len(all) {
		t.Fatalf("leaving %v, %d of %d pieces given back", leaving, len(back), len(all))
	}
	if code := <-codeCh; code != 0 || !strings.Contains(errb.String(), "swarmnode: left 1 of 1 jobs cleanly") {
		t.Fatalf("swarmnode exited %d:\n%s", code, errb.String())
	}
}
