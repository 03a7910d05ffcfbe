package dht

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"flotilla/internal/testenv"
	"flotilla/metainfo"
)

// TestAria2DHT: aria2c's DHT, pointed at a local DHT of our ten nodes
// (--dht-entry-point), finds the peer one of our nodes announced (it
// connects to it), and our nodes find aria2c
// through the announce it makes.
func TestAria2DHT(t *testing.T) {
	testenv.Require(t, "aria2c")
	nodes := newTestDHT(t, 10)
	dir := t.TempDir()
	data := bytes.Repeat([]byte("dht!"), 1<<14)
	raw, err := metainfo.Build("x.bin", []metainfo.File{{Path: []string{"x.bin"}, Length: int64(len(data))}}, 1<<15, nil, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tor, err := metainfo.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	torPath := filepath.Join(dir, "x.torrent")
	if err := os.WriteFile(torPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	ih := ID(tor.InfoHash)

	// our "peer": a TCP listener announced by node 2
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	peerPort := ln.Addr().(*net.TCPAddr).Port
	if res, err := nodes[2].GetPeers(ctx, ih, LookupOptions{Announce: true, Port: peerPort}); err != nil || res.Announced == 0 {
		t.Fatalf("announce: %+v %v", res, err)
	}
	handshake := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		b := make([]byte, 68)
		if _, err := io.ReadFull(c, b); err == nil {
			handshake <- b
		}
	}()

	dhtPort := testenv.FreePort(t, "127.0.0.1")
	btPort := testenv.FreePort(t, "127.0.0.1")
	var out testenv.SyncBuffer
	cmd := exec.CommandContext(ctx, "aria2c", "--enable-dht=true", "--enable-dht6=false",
		"--dht-entry-point="+nodes[0].Addr().String(), "--dht-listen-port="+strconv.Itoa(dhtPort),
		"--dht-file-path="+filepath.Join(dir, "dht.dat"), "--listen-port="+strconv.Itoa(btPort),
		"--bt-enable-lpd=false", "--enable-peer-exchange=false", "--seed-time=0", "--check-integrity=false",
		"--console-log-level=warn", "--summary-interval=0", "-d", filepath.Join(dir, "dl"), torPath)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("aria2c:\n%s", out.String())
		}
	}()
	select {
	case b := <-handshake:
		// The port was announced only in our DHT, so the connection is the
		// proof; aria2c opens with MSE, whose bytes are random, and with a
		// plain handshake only when that fails.
		if bytes.HasPrefix(b, []byte("\x13BitTorrent protocol")) && !bytes.Equal(b[28:48], ih[:]) {
			t.Fatalf("aria2c's handshake %q names info-hash %x, want %x", b, b[28:48], ih[:])
		}
	case <-ctx.Done():
		t.Fatal("aria2c never connected to the peer announced in our DHT")
	}
	// aria2c announces itself too: our nodes find its peer port.
	want := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(btPort))
	testenv.WaitFor(t, 60*time.Second, "our DHT to find aria2c", func() bool {
		res, err := nodes[7].GetPeers(ctx, ih, LookupOptions{})
		for _, p := range res.Peers {
			if p == want {
				return true
			}
		}
		return err != nil
	})
}
