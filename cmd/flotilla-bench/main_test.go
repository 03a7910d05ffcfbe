package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"flotilla/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1GiB": 1 << 30, "256MiB": 256 << 20, "512M": 512 << 20, "1.5G": 3 << 29,
		"1MB": 1e6, "4096": 4096, "32KiB": 32 << 10,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "GiB", "1XB", "0"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
}

func TestParseClients(t *testing.T) {
	got, err := parseClients("coord, aria2c,transmission-cli,anacrolix-torrent,coord")
	if err != nil || strings.Join(got, ",") != "coord,aria2c,transmission,anacrolix" {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := parseClients("qbittorrent"); err == nil {
		t.Fatal("unknown client accepted")
	}
}

func TestTable(t *testing.T) {
	cs := []*client{{Name: "coord"}, {Name: "aria2c"}, {Name: "rain"}, {Name: "transmission-cli", Skip: "needs netns"}}
	rs := []result{
		{Client: "coord", Run: 1, OK: true, Wall: 4 * time.Second, MBps: 250, CPU: 2 * time.Second, RSSMiB: 40},
		{Client: "coord", Run: 2, OK: true, Wall: 6 * time.Second, MBps: 150, CPU: 4 * time.Second, RSSMiB: 50},
		{Client: "coord", Run: 3, OK: true, Wall: 5 * time.Second, MBps: 200, CPU: 3 * time.Second, RSSMiB: 45},
		{Client: "aria2c", Run: 1, OK: true, Wall: 10 * time.Second, MBps: 100, CPU: 6 * time.Second, RSSMiB: 22.5},
		{Client: "aria2c", Run: 2, Fail: "wrong output: x"},
		{Client: "rain", Run: 1, Fail: "exit status 1"},
	}
	var ss []summary
	for _, c := range cs {
		ss = append(ss, summarize(c, rs))
	}
	var b bytes.Buffer
	printTable(&b, ss)
	out := b.String()
	for _, want := range []string{
		"coord                  3/3     5.00    200.0     3.00     45.0 |     1.00     1.00     1.00",
		"aria2c                 1/2    10.00    100.0     6.00     22.5 |     0.50     2.00     0.50",
		"rain                   0/1     FAIL     FAIL",
		"transmission-cli   skipped: needs netns",
		"FAIL aria2c run 2: wrong output: x",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

// TestBenchAria2 runs the whole benchmark small: a 4 MiB swarm with two
// seeders, aria2c downloading twice, and the table.
func TestBenchAria2(t *testing.T) {
	testenv.Require(t, "opentracker", "aria2c")
	var out, errb bytes.Buffer
	rc := run([]string{"--size", "4MiB", "--piece", "256KiB", "--seeders", "2", "--runs", "2",
		"--clients", "aria2c,transmission", "--no-install", "--dir", t.TempDir()}, &out, &errb)
	if rc != 0 {
		t.Fatalf("rc %d\nstdout:\n%s\nstderr:\n%s", rc, out.String(), errb.String())
	}
	s := out.String()
	for _, want := range []string{"run 1/2 aria2c", "run 2/2 aria2c", "aria2c                 2/2", "transmission-cli   skipped: needs the netns lab"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}

// TestCoordNotBuilt: a checkout whose coord does not build is reported,
// not measured.
func TestCoordNotBuilt(t *testing.T) {
	c := coordClient(t.Context(), t.TempDir(), t.TempDir())
	if c.Path != "" || !strings.HasPrefix(c.Skip, "not built (error ") {
		t.Fatalf("client %+v", c)
	}
}

func TestFirstRequest(t *testing.T) {
	log := "downloaded x (1.0 GiB) to /o/x; received 1 bytes from peers in 2s (1 B/s)\n" +
		"first block requested 478ms after start, 2ms after the first peer's handshake (476ms after start)\n"
	if d, r := firstRequest(log); d != 478*time.Millisecond || r != 2*time.Millisecond {
		t.Fatalf("firstRequest = %v, %v; want 478ms, 2ms", d, r)
	}
	if d, r := firstRequest("first block requested 5ms after start\n"); d != 5*time.Millisecond || r != -1 {
		t.Fatalf("without the unchoke part: %v, %v", d, r)
	}
	for _, bad := range []string{"", "first block requested soon after start\n", "first block requested 3s\n"} {
		if d, _ := firstRequest(bad); d != 0 {
			t.Fatalf("firstRequest(%q) = %v, want 0", bad, d)
		}
	}
}

// TestHelp: --help says what flotilla-bench is and lists its flags with
// two dashes, on stdout.
func TestHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--help"}, &out, &errb); code != 0 || errb.Len() != 0 {
		t.Fatalf("--help: code %d, stderr %q", code, errb.String())
	}
	h := out.String()
	for _, want := range []string{"Usage: flotilla-bench [FLAGS]", "measures Flotilla's coord download against reference", "\n  --scaling\n", "\n  --size string\n"} {
		if !strings.Contains(h, want) {
			t.Errorf("--help lacks %q:\n%s", want, h)
		}
	}
	errb.Reset()
	if code := run([]string{"--frob"}, &out, &errb); code != 2 ||
		errb.String() != "flotilla-bench: flag provided but not defined: -frob; run 'flotilla-bench --help' for its flags\n" {
		t.Errorf("bad flag: code %d, %q", code, errb.String())
	}
}

func TestLastLine(t *testing.T) {
	var l lastLine
	io.WriteString(&l, "building rain\ngo: error\n")
	io.WriteString(&l, "install-reference-clients: building rain failed (its output is above)\n\n")
	if got := l.String(); got != "install-reference-clients: building rain failed (its output is above)" {
		t.Errorf("got %q", got)
	}
}
