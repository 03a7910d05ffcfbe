package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flotilla/cluster"
	"flotilla/internal/testenv"
)

// The cluster key may come from FLOTILLA_CLUSTER_KEY instead of a file; a
// malformed one is a clear error that does not echo it.
func TestClusterKeyFromEnvironment(t *testing.T) {
	torrent, _ := writeTorrent(t, [][]string{{"http://127.0.0.1:1/announce"}})
	const secret = "s3cr3t-n0t-a-key"
	for _, bad := range []string{secret, cluster.KeyPrefix + secret, cluster.KeyPrefix + "AAAA"} {
		env := map[string]string{cluster.KeyEnv: bad}
		for _, args := range [][]string{
			{"nodes", "--join", "127.0.0.1:1"},
			{"download", torrent, "--out", t.TempDir(), "--listen", "127.0.0.1:0", "--cluster-listen", "127.0.0.1:0"},
		} {
			code, _, errs := runCoordEnv(t, env, args...)
			if code != 1 || !strings.Contains(errs, cluster.KeyEnv+": bad cluster key") || strings.Count(errs, "\n") != 1 {
				t.Errorf("coord %s with %s=%q: code %d, stderr %q; want one line naming the variable", args[0], cluster.KeyEnv, bad, code, errs)
			}
			if strings.Contains(errs, secret) {
				t.Errorf("coord %s echoes the malformed key: %q", args[0], errs)
			}
		}
	}

	// A key file wins over the variable.
	_, keyFile := newClusterKey(t)
	code, _, errs := runCoordEnv(t, map[string]string{cluster.KeyEnv: secret},
		"nodes", "--join", "127.0.0.1:1", "--cluster-key-file", keyFile, "--timeout", "200ms")
	if code != 1 || !strings.Contains(errs, "could not join") {
		t.Errorf("key file and a malformed variable: code %d, stderr %q; want the file's key used", code, errs)
	}

	// A good key in the variable starts a download's cluster.
	key, _ := newClusterKey(t)
	out, errb := &syncBuffer{}, &syncBuffer{}
	env := &cmdEnv{stdout: out, stderr: errb, getenv: func(k string) string {
		if k == cluster.KeyEnv {
			return key.Text()
		}
		return ""
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	codeCh := make(chan int, 1)
	go func() {
		codeCh <- run(ctx, env, []string{"download", "--dht=false", torrent, "--out", filepath.Join(t.TempDir(), "out"),
			"--listen", "127.0.0.1:0", "--cluster-listen", "127.0.0.1:0", "--progress", "none"})
	}()
	testenv.WaitFor(t, 10*time.Second, "the coordinator's cluster to start", func() bool {
		select {
		case code := <-codeCh:
			t.Fatalf("coord download with %s exited %d early:\n%s", cluster.KeyEnv, code, errb)
		default:
		}
		return strings.Contains(errb.String(), "cluster: gossip on")
	})
	if s := errb.String(); strings.Contains(s, key.Text()) {
		t.Errorf("the key is printed: %q", s)
	}
	cancel()
	select {
	case code := <-codeCh:
		if code != exitInterrupted {
			t.Errorf("interrupted download: code %d, want %d\n%s", code, exitInterrupted, errb)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("coord download did not stop when interrupted")
	}
}
