package peerswarm

import (
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"testing"
	"time"

	"flotilla/peerwire"
	"flotilla/peerwire/mse"
	"flotilla/swarm/swarmtest"
)

// TestEncryptedSwarms: a leecher downloads from a seeder listening
// itself (as a swarm node's swarms do) under each pair of policies that
// has a way to connect: prefer falls back to plaintext to an off seeder,
// require on either side gives an encrypted connection.
func TestEncryptedSwarms(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20+333, 64<<10)
	for _, tc := range []struct{ seed, leech mse.Policy }{
		{mse.Require, mse.Require}, {mse.Prefer, mse.Require}, {mse.Require, mse.Prefer},
		{mse.Off, mse.Prefer}, {mse.Prefer, mse.Off},
	} {
		t.Run(fmt.Sprintf("seed=%v/leech=%v", tc.seed, tc.leech), func(t *testing.T) {
			cfg := testConfig(tt, swarmtest.NewStorage(tt.Info, tt.Data), 1)
			cfg.Listener, cfg.Seed, cfg.Encryption = listen(t, "127.0.0.1"), true, tc.seed
			seeder := newTestDownload(t, cfg)
			st := swarmtest.NewStorage(tt.Info, nil)
			lcfg := testConfig(tt, st, 2)
			lcfg.Encryption = tc.leech
			leecher := newTestDownload(t, lcfg)
			leecher.AddPeers([]netip.AddrPort{addrOf(t, seeder)})
			waitComplete(t, leecher, 20*time.Second)
			if !bytes.Equal(st.Bytes(), tt.Data) {
				t.Fatal("downloaded data differs")
			}
		})
	}
}

// TestEncryptionRefusals: a seeder requiring encryption closes a
// plaintext handshake; one with encryption off closes an MSE initiator;
// a prefer seeder answers an MSE initiator and then the BitTorrent
// handshake carried in its initial payload.
func TestEncryptionRefusals(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 256<<10, 64<<10)
	seederWith := func(p mse.Policy) *testDownload {
		cfg := testConfig(tt, swarmtest.NewStorage(tt.Info, tt.Data), 1)
		cfg.Listener, cfg.Seed, cfg.Encryption = listen(t, "127.0.0.1"), true, p
		return newTestDownload(t, cfg)
	}
	var hs bytes.Buffer
	peerwire.WriteHandshake(&hs, peerwire.Handshake{InfoHash: tt.InfoHash, PeerID: [20]byte{'x'}})

	c := dialFrom(t, seederWith(mse.Require), "127.0.0.5", hs.Bytes())
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := io.Copy(io.Discard, c); n != 0 || isTimeout(err) {
		t.Fatalf("require: plaintext peer got %d bytes, %v", n, err)
	}

	c = dialFrom(t, seederWith(mse.Off), "127.0.0.6", nil)
	if _, err := mse.Initiate(c, tt.InfoHash, mse.RC4, nil, time.Now().Add(10*time.Second)); err == nil || isTimeout(err) {
		t.Fatalf("off: MSE handshake: %v, want refused", err)
	}

	c = dialFrom(t, seederWith(mse.Prefer), "127.0.0.7", nil)
	mc, err := mse.Initiate(c, tt.InfoHash, mse.RC4, hs.Bytes(), time.Now().Add(10*time.Second))
	if err != nil {
		t.Fatalf("prefer: %v", err)
	}
	mc.SetReadDeadline(time.Now().Add(10 * time.Second))
	theirs, err := peerwire.ReadHandshake(mc)
	if err != nil || theirs.InfoHash != tt.InfoHash {
		t.Fatalf("prefer: handshake %x, %v", theirs.InfoHash, err)
	}
}

func isTimeout(err error) bool {
	te, ok := err.(interface{ Timeout() bool })
	return ok && te.Timeout()
}
