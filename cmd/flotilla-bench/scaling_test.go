package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
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

// analyse finds each host's first and last piece, share, session and job
// start, the 95 % mark and the WAN's idle time from the logs and samples.
func TestAnalyse(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	at := func(ms int) string { return t0.Add(time.Duration(ms) * time.Millisecond).Format(time.RFC3339Nano) }
	var log strings.Builder
	log.WriteString("time=" + at(500) + ` level=INFO msg="delegate session open" node=node1 addr=x` + "\n")
	for i := range 20 {
		w := "local"
		if i%2 == 1 {
			w = "node1"
		}
		log.WriteString("time=" + at(1000+100*i) + ` level=DEBUG msg="piece accepted" swarm=subchief worker=` + w + " piece=" + strconv.Itoa(i) + "\n")
	}
	log.WriteString("time=" + at(3000) + ` level=INFO msg="download complete"` + "\n")
	log.WriteString("time=" + at(3100) + ` level=DEBUG msg="left the cluster" sessions=1ms leave=800ms` + "\n")
	nodeLogs := map[string]string{"node1": "time=" + at(600) + ` level=INFO msg="job started" job=1` + "\n"}
	// node1's WAN: idle for 1 s, then at the cap (12.5 MB/s at 100 Mbit/s) until 3 s.
	var samples []wanSample
	var rx uint64
	for ms := 0; ms <= 4000; ms += 100 {
		if ms > 1000 && ms <= 3000 {
			rx += 1250000
		}
		samples = append(samples, wanSample{t0.Add(time.Duration(ms) * time.Millisecond), rx})
	}
	bd := analyse(t0, t0.Add(4*time.Second), log.String(), nodeLogs, map[string][]wanSample{"node1": samples}, map[string]int{"coord": 100, "node1": 100})
	if bd.pieces != 20 || bd.at95 != 2800*time.Millisecond || bd.at100 != 2900*time.Millisecond || bd.complete != 3*time.Second {
		t.Fatalf("pieces %d, 95 %% at %v, last at %v, complete at %v", bd.pieces, bd.at95, bd.at100, bd.complete)
	}
	if len(bd.hosts) != 2 || bd.hosts[0].host != "coord" || bd.hosts[1].host != "node1" {
		t.Fatalf("hosts %+v", bd.hosts)
	}
	n := bd.hosts[1]
	if n.pieces != 10 || n.session != 500*time.Millisecond || n.jobStarted != 600*time.Millisecond || n.firstPiece != 1100*time.Millisecond {
		t.Errorf("node1 %+v", n)
	}
	if n.firstWAN != time.Second || n.idleStart != time.Second || n.idle != 0 {
		t.Errorf("node1 WAN: first data at %v, idle before %v, idle after %v", n.firstWAN, n.idleStart, n.idle)
	}
	if len(bd.closing) != 1 || bd.closing[0] != "left the cluster: sessions=1ms leave=800ms" {
		t.Errorf("closing %q", bd.closing)
	}
}
