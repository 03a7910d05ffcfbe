package fuzzcorpus

import (
	"bytes"
	"strconv"
	"testing"
)

// TestRoundTrip: what Write stores, parse reads back, for every byte.
func TestRoundTrip(t *testing.T) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	for _, s := range []string{"", "plain", "\"quoted\"\n", string(all)} {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(s) + ")\n"
		got, err := parse(body)
		if err != nil || !bytes.Equal(got, []byte(s)) {
			t.Errorf("%q: %q, %v", s, got, err)
		}
	}
	if got, err := parse("go test fuzz v1\nstring(\"magnet:?x\")\n"); err != nil || string(got) != "magnet:?x" {
		t.Errorf("string argument: %q, %v", got, err)
	}
	for _, bad := range []string{"", "go test fuzz v2\n[]byte(\"\")\n", "go test fuzz v1\n[]byte(\"\"\n", "go test fuzz v1\n[]byte(x)\n"} {
		if _, err := parse(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
