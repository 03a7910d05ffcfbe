package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

	"flotilla/cluster"
	"flotilla/internal/testenv"
)

// /readyz answers 200 only while the delegate endpoint is up, the cluster
// joined and the node not stopping; /healthz answers 200 throughout.
func TestProbeStates(t *testing.T) {
	var p probes
	srv := httptest.NewServer(p.handler())
	defer srv.Close()
	get := func(path string) int {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	steps := []struct {
		name  string
		apply func()
		ready int
	}{
		{"starting", func() {}, 503},
		{"delegate up, not joined", func() { p.delegateUp.Store(true) }, 503},
		{"joined", func() { p.joined.Store(true) }, 200},
		{"stopping", func() { p.stopping.Store(true) }, 503},
	}
	for _, s := range steps {
		s.apply()
		if got := get("/readyz"); got != s.ready {
			t.Errorf("%s: /readyz %d, want %d", s.name, got, s.ready)
		}
		if got := get("/healthz"); got != 200 {
			t.Errorf("%s: /healthz %d, want 200", s.name, got)
		}
	}
}

// With --http a running node serves the probes, and /readyz turns 200 once
// it has joined a member.
func TestProbesOfARunningNode(t *testing.T) {
	key, err := cluster.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	seed := startCoordinatorMember(t, key, "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := startNode(ctx, key, "--name", "node-probes", "--join", seed.Addr().String(), "--cluster-listen", "127.0.0.1:0",
		"--listen", "127.0.0.1:0", "--data", t.TempDir(), "--http", "127.0.0.1:0")
	codeCh, errb := p.code, &p.errb
	addrRE := regexp.MustCompile(`probes on http://(\S+)/healthz`)
	var base string
	testenv.WaitFor(t, 15*time.Second, "the node to say where its probes are", func() bool {
		select {
		case code := <-codeCh:
			t.Fatalf("swarmnode exited %d:\n%s", code, errb.String())
		default:
		}
		if m := addrRE.FindStringSubmatch(errb.String()); m != nil {
			base = "http://" + m[1]
			return true
		}
		return false
	})
	status := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := status("/healthz"); code != 200 || body != "{\"status\":\"alive\"}\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	testenv.WaitFor(t, 15*time.Second, "/readyz to answer 200 after the join", func() bool {
		code, _ := status("/readyz")
		return code == 200
	})
	cancel()
	if code := <-codeCh; code != 0 {
		t.Fatalf("swarmnode exited %d:\n%s", code, errb.String())
	}
	if code, _ := status("/healthz"); code != 0 {
		t.Errorf("the probe server still answers after the node stopped")
	}
}
