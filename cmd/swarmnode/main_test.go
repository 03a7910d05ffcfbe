package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
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
}
