package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flotilla/internal/lab"
)

// verifyOutput accepts the payload (and the resume record) and refuses a
// changed byte, a missing byte and an extra file.
func TestVerifyOutput(t *testing.T) {
	dir := t.TempDir()
	p, err := lab.WritePayload(dir, lab.PayloadSpec{Name: "m", Seed: 3, Files: []lab.FileSpec{{Path: "a/x", Size: 5000}, {Path: "y", Size: 7}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, ".flotilla"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, ".flotilla", "resume"), []byte("r"), 0o644)
	if got := verifyOutput(p, dir); !strings.HasPrefix(got, "ok") {
		t.Fatalf("good output: %s", got)
	}
	extra := filepath.Join(dir, "m", "a", "x.part")
	os.WriteFile(extra, []byte("dup"), 0o644)
	if got := verifyOutput(p, dir); !strings.Contains(got, "unexpected files") {
		t.Fatalf("extra file: %s", got)
	}
	os.Remove(extra)
	y := filepath.Join(dir, "m", "y")
	os.WriteFile(y, []byte("1234567890"), 0o644)
	if got := verifyOutput(p, dir); !strings.HasPrefix(got, "FAIL") {
		t.Fatalf("longer file: %s", got)
	}
}

func TestScalingReport(t *testing.T) {
	log := "downloaded x (1 GiB) to /o; received 1 bytes from peers in 1s (1 B/s)\n" +
		"  local                      249 pieces  291.0 MiB received  0 hash failures\n" +
		"  node1                      247 pieces  274.0 MiB received  0 hash failures\n"
	if got := split(log); got != "local 249, node1 247 pieces" {
		t.Fatalf("split = %q", got)
	}
	if got := split("downloaded x\n"); got != "local only" {
		t.Fatalf("split alone = %q", got)
	}
	at, ok := logTime(`time=2026-11-27T04:35:18.558Z level=WARN msg="worker gone"`)
	if !ok || !at.Equal(time.Date(2026, 11, 27, 4, 35, 18, 558e6, time.UTC)) {
		t.Fatalf("logTime = %v, %v", at, ok)
	}
	var b bytes.Buffer
	printScaling(&b, scenario{}, []scalingRun{{Hosts: 1, Wall: 90 * time.Second, Verified: "ok"}, {Hosts: 2, Wall: 45 * time.Second, Verified: "ok"}}, options{rateMbit: 100})
	if !strings.Contains(b.String(), "2.00x") {
		t.Fatalf("table:\n%s", b.String())
	}
}

// TestFailoverLine: the failover report says how long the lease took and
// why, and says so plainly when the log does not show it (it printed
// "lease back in the pool after never ()").
func TestFailoverLine(t *testing.T) {
	at := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	d := death{node: "node1", at: at, how: "host crash"}
	log := "time=2026-12-05T11:59:59.000Z level=DEBUG msg=\"worker gone; its lease returns to the pool\" worker=node1 err=early\n" +
		"time=2026-12-05T12:00:01.250Z level=DEBUG msg=\"worker gone; its lease returns to the pool\" worker=node1 err=\"delegate: session closed\"\n" +
		"time=2026-12-05T12:00:03.000Z level=INFO msg=\"swarm node gone\" node=node1 reason=failed\n"
	for _, c := range []struct{ log, want string }{
		{log, "node1, host crash: lease back in the pool after 1.25 s (\"delegate: session closed\"); memberlist failure seen after 3.00 s"},
		{"", "node1, host crash: its lease was not seen returning to the pool (the download may have ended first); no memberlist failure seen"},
	} {
		if got := failoverLine(d, c.log); got != c.want {
			t.Errorf("got  %q\nwant %q", got, c.want)
		}
	}
}

func TestParseScenarios(t *testing.T) {
	got, err := parseScenarios("eight, small")
	if err != nil || strings.Join(got, ",") != "eight,small" {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, bad := range []string{"", "eight,nine"} {
		if _, err := parseScenarios(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// sumTraces files each sample under the first concern one of its frames
// matches, whichever frame it is.
func TestSumTraces(t *testing.T) {
	out := "File: coord\nType: cpu\nDuration: 1s, Total samples = 60ms\n" +
		"-----------+-------------------------------------------------------\n" +
		"      20ms   crypto/sha1.blockSHANI\n             crypto/sha1.Sum\n             flotilla/swarm.(*download).run\n" +
		"-----------+-------------------------------------------------------\n" +
		"      30ms   syscall.Syscall6\n             os.(*File).WriteAt\n             flotilla/piecestore.(*Store).write\n" +
		"-----------+-------------------------------------------------------\n" +
		"      10ms   runtime.futex\n             runtime.mcall\n" +
		"-----------+-------------------------------------------------------\n"
	shares, total := sumTraces(out)
	if total != 60*time.Millisecond {
		t.Fatalf("total %v", total)
	}
	want := []profileShare{{"disk", 30 * time.Millisecond}, {"hashing", 20 * time.Millisecond}, {"other", 10 * time.Millisecond}}
	if len(shares) != len(want) {
		t.Fatalf("shares %v", shares)
	}
	for i := range want {
		if shares[i] != want[i] {
			t.Errorf("share %d = %v, want %v", i, shares[i], want[i])
		}
	}
}
