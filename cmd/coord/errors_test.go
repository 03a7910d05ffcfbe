package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flotilla/cluster"
	"flotilla/internal/testenv"
	"flotilla/metainfo"
	"flotilla/tracker/trackertest"
)

// writeRaw writes a file with the given bytes and returns its path.
func writeRaw(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// v2OnlyTorrent is a BitTorrent v2-only (BEP 52) torrent: a "file tree"
// and no v1 "pieces".
const v2OnlyTorrent = "d8:announce27:http://127.0.0.1:1/announce4:infod9:file treed6:v2.bind0:d6:lengthi100e11:pieces root32:" +
	"rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrreee12:meta versioni2e4:name6:v2.bin12:piece lengthi16384eee"

// TestMessagesSayWhatToDo: every error a user can get from coord is one
// line that starts with the command and ends with what to do. The exact
// sentences are asserted, so a change to one is a deliberate change.
func TestMessagesSayWhatToDo(t *testing.T) {
	withTracker, _ := writeTorrent(t, [][]string{{"http://127.0.0.1:1/announce"}})
	noTrackers, _ := writeTorrent(t, nil)
	fileTracker, _ := writeTorrent(t, [][]string{{"file:///etc/passwd"}})
	jsTracker, _ := writeTorrent(t, [][]string{{"javascript:alert(1)"}})
	garbage := writeRaw(t, "garbage.torrent", []byte("d8:announce"))
	_, garbageErr := metainfo.Load(garbage)
	v2 := writeRaw(t, "v2.torrent", []byte(v2OnlyTorrent))
	missing := filepath.Join(t.TempDir(), "missing.torrent")
	notDir := writeRaw(t, "file", []byte("x"))
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	const magnet = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=x"

	// out is an output directory that must not exist afterwards: coord
	// refuses these before it creates anything.
	out := func() string { return filepath.Join(t.TempDir(), "out") }
	for _, c := range []struct {
		name string
		args []string
		code int
		want string // the whole of stderr
	}{
		{"magnet download", []string{"download", magnet, "--out", out()}, 1,
			"coord download: the magnet link names no usable tracker and no peer, and the DHT is off: there is nobody to fetch the torrent's info from; give peers with --peer HOST:PORT, use a magnet link with tr= trackers, or leave the DHT on\n"},
		{"magnet seed", []string{"seed", magnet, "--data", out()}, 1,
			"coord seed: coord seed takes a .torrent file, not a magnet link; give the path of the .torrent file (coord download fetches it from a magnet link and saves it beside the data)\n"},
		{"magnet announce", []string{"announce", magnet}, 1,
			"coord announce: coord announce takes a .torrent file, not a magnet link; give the path of the .torrent file (coord download fetches it from a magnet link and saves it beside the data)\n"},
		{"v2-only", []string{"download", v2, "--out", out()}, 1,
			"coord download: " + v2 + " is a v2-only (BEP 52) torrent, which is not supported yet; use a v1 or hybrid torrent of the same data\n"},
		{"missing torrent", []string{"download", missing, "--out", out()}, 1,
			"coord download: cannot read " + missing + ": no such file; check the path of the .torrent file\n"},
		{"not a torrent", []string{"announce", garbage}, 1,
			"coord announce: " + garbage + " is not a valid torrent (" + strings.TrimPrefix(strings.TrimPrefix(garbageErr.Error(), garbage+": "), "metainfo: ") +
				"); check that it is a complete .torrent file (a download of it may have been cut short)\n"},
		{"file:// tracker", []string{"download", fileTracker, "--out", out()}, 1,
			"coord download: warning: unusable tracker URL \"file:///etc/passwd\": scheme \"file\" is not supported (use http, https or udp); that tracker is skipped\n" +
				"coord download: " + fileTracker + " lists no usable tracker and no --peer was given: there is nobody to download from; " +
				"give peers to connect to with --peer HOST:PORT, or use a torrent with an http(s) or udp tracker\n"},
		{"javascript: tracker", []string{"download", jsTracker, "--out", out()}, 1,
			"coord download: warning: unusable tracker URL \"javascript:alert(1)\": scheme \"javascript\" is not supported (use http, https or udp); that tracker is skipped\n" +
				"coord download: " + jsTracker + " lists no usable tracker and no --peer was given: there is nobody to download from; " +
				"give peers to connect to with --peer HOST:PORT, or use a torrent with an http(s) or udp tracker\n"},
		{"no trackers", []string{"download", noTrackers, "--out", out()}, 1,
			"coord download: " + noTrackers + " lists no trackers and no --peer was given: there is nobody to download from; give peers to connect to with --peer HOST:PORT\n"},
		{"bad --peer", []string{"download", withTracker, "--out", out(), "--peer", "nowhere"}, 1,
			"coord download: --peer: \"nowhere\" is not HOST:PORT; give peers as HOST:PORT,HOST:PORT\n"},
		{"bad --max-peers", []string{"download", withTracker, "--out", out(), "--max-peers", "0"}, 1,
			"coord download: --max-peers 0 is not a number of connections; give a positive number (the default is 80)\n"},
		{"no cluster key", []string{"download", withTracker, "--out", out(), "--cluster-listen", "127.0.0.1:0"}, 1,
			"coord download: " + cluster.ErrNoKey.Error() + "\n"},
		{"unwritable output", []string{"download", withTracker, "--out", filepath.Join(notDir, "sub")}, 1,
			"coord download: output directory: mkdir " + notDir + ": not a directory; choose another directory with --out, or fix its permissions\n"},
		{"port in use", []string{"download", withTracker, "--out", t.TempDir(), "--listen", busy.Addr().String()}, 1,
			"coord download: cannot listen on " + busy.Addr().String() + ": the port is in use; choose another with --listen (port 0 picks a free one)\n"},
		{"unknown flag", []string{"download", withTracker, "--frob"}, 2,
			"coord download: flag provided but not defined: -frob; run 'coord download --help' for its flags\n"},
		{"no torrent", []string{"download"}, 2,
			"coord download: expected exactly one TORRENT argument (see --help)\n"},
		{"seed without --data", []string{"seed", withTracker}, 2,
			"coord seed: expected TORRENT and --data DIR (see --help)\n"},
		{"announce bad port", []string{"announce", withTracker, "--port", "0"}, 2,
			"coord announce: --port 0 is not a TCP port; give a port from 1 to 65535\n"},
		{"announce bad timeout", []string{"announce", withTracker, "--timeout", "0s"}, 2,
			"coord announce: --timeout and --udp-retry must be positive; give durations such as 20s\n"},
		{"announce no trackers", []string{"announce", noTrackers}, 1,
			"coord announce: " + noTrackers + " lists no trackers; there is nothing to ask; `coord download --peer HOST:PORT` can still fetch it from peers you know\n"},
		{"nodes without --join", []string{"nodes"}, 2,
			"coord nodes: --join ADDR is required; give the address of any member, e.g. --join 10.0.0.1:7946\n"},
		{"unknown command", []string{"frobnicate"}, 2,
			"coord: unknown command \"frobnicate\"; run 'coord --help' for the commands\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, errs := runCoord(t, c.args...)
			if code != c.code || errs != c.want {
				t.Errorf("code %d, stderr:\n%s\nwant code %d, stderr:\n%s", code, errs, c.code, c.want)
			}
			for i, a := range c.args {
				if (a == "--out" || a == "--data") && strings.HasSuffix(c.args[i+1], "out") {
					if _, err := os.Stat(c.args[i+1]); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("%s was created (%v): a refused command must create nothing", c.args[i+1], err)
					}
				}
			}
		})
	}
}

// TestInterruptMessages: a download stopped by a signal says the same
// command resumes it; a seed says it stopped seeding (there is nothing to
// resume).
func TestInterruptMessages(t *testing.T) {
	tr := trackertest.NewHTTP()
	defer tr.Close()
	path, tor := writeTorrent(t, [][]string{{tr.URL}})
	data := t.TempDir()
	// writeTorrent's torrent holds one file in a directory named like it.
	if err := os.MkdirAll(filepath.Join(data, tor.Info.Name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, tor.Info.Name, "payload.bin"), bytes.Repeat([]byte("flotilla"), 40000), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"seed", path, "--data", data}, "coord seed: interrupted; stopped seeding\n"},
		{[]string{"download", path, "--out", t.TempDir()}, "coord download: interrupted; run the same command to resume (verified pieces are kept)\n"},
	} {
		before := tr.Announces()
		ctx, cancel := context.WithCancel(context.Background())
		var stdout, stderr syncBuffer
		env := &cmdEnv{stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
		codec := make(chan int, 1)
		go func() {
			codec <- run(ctx, env, append(noDHT(c.args), "--listen", "127.0.0.1:0", "--progress", "none"))
		}()
		testenv.WaitFor(t, 20*time.Second, "an announce", func() bool { return tr.Announces() > before })
		cancel()
		code := <-codec
		errs := stderr.String()
		if code != exitInterrupted || !strings.HasSuffix(errs, c.want) {
			t.Errorf("%s: exit %d, stderr:\n%s\nwant exit %d ending with %q", c.args[0], code, errs, exitInterrupted, c.want)
		}
	}
}
