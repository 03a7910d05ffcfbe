package main

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestServeClearErrors: coord serve refuses a configuration it cannot run
// safely, saying why and what to do, before it opens anything.
func TestServeClearErrors(t *testing.T) {
	dir := t.TempDir()
	dirs := []string{"serve", "--state", filepath.Join(dir, "state"), "--data", filepath.Join(dir, "data")}
	with := func(extra ...string) []string { return append(slices.Clip(dirs), extra...) }
	base := with("--listen", "127.0.0.1:0")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	token := filepath.Join(dir, "token")
	os.WriteFile(token, []byte("t0k\n"), 0o600)
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no directories", []string{"serve"}, 2, "--state DIR and --data DIR"},
		{"no token", append(slices.Clip(base), "--http", "127.0.0.1:0"), 1, "no API token; give one with --api-token-file"},
		{"insecure off loopback", append(slices.Clip(base), "--http", "0.0.0.0:0", "--insecure-localhost"), 1, "only allowed on a loopback address"},
		{"empty token file", append(slices.Clip(base), "--api-token-file", empty), 1, "is empty"},
		{"missing token file", append(slices.Clip(base), "--api-token-file", filepath.Join(dir, "nope")), 1, "cannot read the API token"},
		{"API port in use", append(slices.Clip(base), "--api-token-file", token, "--http", busy.Addr().String()), 1, "choose another address with --http"},
		{"peer port in use", with("--api-token-file", token, "--http", "127.0.0.1:0", "--listen", busy.Addr().String()), 1, "choose another address with --listen"},
		{"bad log format", append(slices.Clip(base), "--insecure-localhost", "--log-format", "xml"), 1, "give text or json"},
		{"cluster without key", append(slices.Clip(base), "--insecure-localhost", "--cluster-listen", "127.0.0.1:0"), 1, "coord keygen"},
	} {
		code, _, errs := runCoord(t, c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", c.name, code, errs, c.code, c.want)
		}
	}
}

// TestAPITokenFromEnvironmentIsTrimmed: $FLOTILLA_API_TOKEN filled from a
// Kubernetes Secret made with --from-file ends with the file's newline;
// the token is what precedes it, as with --api-token-file.
func TestAPITokenFromEnvironmentIsTrimmed(t *testing.T) {
	var errb strings.Builder
	env := &cmdEnv{stderr: &errb, getenv: func(k string) string {
		if k == tokenEnv {
			return "t0k\n"
		}
		return ""
	}}
	token, code := apiToken(env, serveOpts{http: "0.0.0.0:8080"})
	if code != 0 || token != "t0k" {
		t.Fatalf("token %q, code %d (%s); want \"t0k\"", token, code, errb.String())
	}
}
