package main

import (
	"net"
	"strings"
	"testing"
)

// TestDHTFlags: the DHT flags' errors say what to do, and a test that
// asks for the DHT without its own bootstrap list fails (the guard).
func TestDHTFlags(t *testing.T) {
	tor, _ := writeTorrent(t, nil)
	if code, _, errs := runCoord(t, "download", tor, "--out", t.TempDir(), "--listen", "127.0.0.1:0", "--dht", "--dht-listen", "127.0.0.1:0"); code != 1 || !strings.Contains(errs, "public bootstrap") {
		t.Errorf("public routers under test: code %d, stderr %q", code, errs)
	}
	if code, _, errs := runCoord(t, "download", tor, "--out", t.TempDir(), "--dht", "--dht-bootstrap", "nonsense"); code != 1 || !strings.Contains(errs, "want HOST:PORT") {
		t.Errorf("bad bootstrap: code %d, stderr %q", code, errs)
	}
	busy, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if code, _, errs := runCoord(t, "download", tor, "--out", t.TempDir(), "--listen", "127.0.0.1:0", "--dht",
		"--dht-bootstrap", "127.0.0.1:9", "--dht-listen", busy.LocalAddr().String()); code != 1 || !strings.Contains(errs, "--dht-listen") {
		t.Errorf("DHT port in use: code %d, stderr %q", code, errs)
	}
}
