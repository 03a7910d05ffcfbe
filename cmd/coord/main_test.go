package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"flotilla/cluster"
	"flotilla/internal/testenv"
	"flotilla/metainfo"
)

// runCoord runs a command line in-process and returns exit code and output.
// The DHT is off unless the command line turns it on (noDHT).
func runCoord(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &cmdEnv{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	code = run(context.Background(), env, noDHT(args))
	return code, out.String(), errb.String()
}

// noDHT turns the DHT off for the commands that run one (download, seed,
// serve): tests never join the public DHT (the dht package refuses to, so
// a test that forgot would fail). "--dht=false" goes right after the
// command, so a test that passes --dht (with its own --dht-bootstrap)
// later on the line overrides it.
func noDHT(args []string) []string {
	if len(args) == 0 || (args[0] != "download" && args[0] != "seed" && args[0] != "serve") {
		return args
	}
	return append([]string{args[0], "--dht=false"}, args[1:]...)
}

// writeTorrent builds a small single-file torrent with the given tiers and
// returns its path and parsed form.
func writeTorrent(t *testing.T, tiers [][]string) (string, *metainfo.Torrent) {
	t.Helper()
	data := bytes.Repeat([]byte("flotilla"), 40000)
	raw, err := metainfo.Build("payload.bin", []metainfo.File{{Path: []string{"payload.bin"}, Length: int64(len(data))}},
		1<<16, tiers, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "t.torrent")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	tor, err := metainfo.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return path, tor
}

func TestUsage(t *testing.T) {
	code, out, _ := runCoord(t, "--help")
	if code != 0 || !strings.Contains(out, "announce") {
		t.Fatalf("--help: code %d, output %q", code, out)
	}
	if code, _, errs := runCoord(t, "frobnicate"); code != 2 || !strings.Contains(errs, "unknown command") {
		t.Fatalf("unknown command: code %d, stderr %q", code, errs)
	}
	code, out, _ = runCoord(t, "announce", "--help")
	if code != 0 {
		t.Fatalf("announce --help: code %d", code)
	}
	for _, flag := range []string{"--json", "--timeout", "--port", "--numwant", "--udp-retry", "--v"} {
		if !strings.Contains(out, flag) {
			t.Errorf("announce --help does not explain %s:\n%s", flag, out)
		}
	}
}

func TestAnnounceBadInput(t *testing.T) {
	if code, _, errs := runCoord(t, "announce"); code != 2 || !strings.Contains(errs, "TORRENT") {
		t.Fatalf("no torrent: code %d, stderr %q", code, errs)
	}
	bad := filepath.Join(t.TempDir(), "bad.torrent")
	os.WriteFile(bad, []byte("d8:announce"), 0o644)
	if code, _, errs := runCoord(t, "announce", bad); code != 1 || !strings.Contains(errs, "coord announce:") || strings.Count(errs, "\n") != 1 {
		t.Fatalf("malformed torrent: code %d, stderr %q", code, errs)
	}
	if code, _, errs := runCoord(t, "announce", filepath.Join(t.TempDir(), "missing.torrent")); code != 1 || errs == "" {
		t.Fatalf("missing torrent: code %d, stderr %q", code, errs)
	}
}

func TestAnnounceNoTrackerAnswers(t *testing.T) {
	port := testenv.FreePort(t, "127.0.0.1")
	dead := "udp://127.0.0.1:" + strconv.Itoa(port) + "/announce"
	refused := "http://127.0.0.1:" + strconv.Itoa(port) + "/announce"
	path, _ := writeTorrent(t, [][]string{{dead}, {refused}})
	code, out, errs := runCoord(t, "announce", path, "--timeout", "1s", "--udp-retry", "200ms")
	if code != 1 {
		t.Fatalf("code %d, want 1; stdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if !strings.Contains(errs, "none of 2 trackers answered") || strings.Count(errs, "\n") != 1 {
		t.Fatalf("want a one-line reason, got %q", errs)
	}
	if !strings.Contains(out, dead) || !strings.Contains(out, refused) || strings.Count(out, "error:") != 2 {
		t.Fatalf("table should list both trackers with errors:\n%s", out)
	}
}

func TestAnnounceOpentracker(t *testing.T) {
	port := testenv.FreePort(t, "127.0.0.1")
	dead := "udp://127.0.0.1:" + strconv.Itoa(port) + "/announce"
	// Build first to learn the info-hash, then start the tracker with it
	// whitelisted; the tracker URLs are only known afterwards, so build again.
	_, probe := writeTorrent(t, [][]string{{"http://127.0.0.1:1/announce"}})
	ot := testenv.StartOpentracker(t, "127.0.0.1", probe.InfoHash)
	path, tor := writeTorrent(t, [][]string{{ot.HTTPAnnounce, ot.UDPAnnounce}, {dead}})
	if tor.InfoHash != probe.InfoHash {
		t.Fatal("info-hash depends on trackers")
	}
	code, out, errs := runCoord(t, "announce", path, "--json", "--timeout", "2s", "--udp-retry", "300ms")
	if code != 0 {
		t.Fatalf("code %d; stdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	var rows []announceRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, out)
	}
	if len(rows) != 3 {
		t.Fatalf("want 3 rows, got %d: %s", len(rows), out)
	}
	byURL := map[string]announceRow{}
	for _, r := range rows {
		byURL[r.URL] = r
	}
	for _, u := range []string{ot.HTTPAnnounce, ot.UDPAnnounce} {
		r := byURL[u]
		if !r.OK || r.Interval <= 0 || r.Leechers < 0 || r.Seeders < 0 || r.TookMS <= 0 {
			t.Errorf("%s: want an answer with counts, interval and time, got %+v", u, r)
		}
	}
	if r := byURL[dead]; r.OK || r.Error == "" || r.Protocol != "udp" || r.Tier != 1 {
		t.Errorf("dead tracker: %+v", r)
	}
	// The table form names every tracker too.
	code, out, _ = runCoord(t, "announce", path, "--timeout", "1s", "--udp-retry", "200ms")
	if code != 0 || !strings.Contains(out, "TRACKER") || !strings.Contains(out, ot.UDPAnnounce) || !strings.Contains(out, "interval") {
		t.Fatalf("table: code %d\n%s", code, out)
	}
}

func TestDownloadClearErrors(t *testing.T) {
	noTrackers, _ := writeTorrent(t, nil)
	if code, _, errs := runCoord(t, "download", noTrackers, "--out", t.TempDir()); code != 1 || !strings.Contains(errs, "no trackers and no --peer") {
		t.Errorf("no trackers, no peers: code %d, stderr %q", code, errs)
	}
	withTracker, _ := writeTorrent(t, [][]string{{"http://127.0.0.1:1/announce"}})
	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, []byte("x"), 0o644)
	if code, _, errs := runCoord(t, "download", withTracker, "--out", filepath.Join(notDir, "sub")); code != 1 || !strings.Contains(errs, "output directory") {
		t.Errorf("unwritable output: code %d, stderr %q", code, errs)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if code, _, errs := runCoord(t, "download", withTracker, "--out", t.TempDir(), "--listen", busy.Addr().String()); code != 1 || !strings.Contains(errs, "port is in use") {
		t.Errorf("port in use: code %d, stderr %q", code, errs)
	}
	if code, _, errs := runCoord(t, "download", filepath.Join(t.TempDir(), "nope.torrent")); code != 1 || !strings.Contains(errs, "nope.torrent") {
		t.Errorf("unreadable torrent: code %d, stderr %q", code, errs)
	}
	if code, _, errs := runCoord(t, "download", withTracker, "--out", t.TempDir(), "--cluster-listen", "127.0.0.1:0"); code != 1 || !strings.Contains(errs, "coord keygen") {
		t.Errorf("cluster without a key must say how to make one: code %d, stderr %q", code, errs)
	}
	if code, _, errs := runCoord(t, "seed", withTracker); code != 2 || !strings.Contains(errs, "--data") {
		t.Errorf("seed without --data: code %d, stderr %q", code, errs)
	}
}

func TestKeygen(t *testing.T) {
	code, out, _ := runCoord(t, "keygen")
	if code != 0 || !strings.HasPrefix(out, "flotilla-key-v1:") {
		t.Fatalf("keygen: %d %q", code, out)
	}
	if _, err := cluster.ParseKey(out); err != nil {
		t.Fatalf("keygen output does not parse: %v", err)
	}
	_, out2, _ := runCoord(t, "keygen")
	if out == out2 {
		t.Fatal("two keygen runs gave the same key")
	}
}
