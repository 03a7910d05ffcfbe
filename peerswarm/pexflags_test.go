package peerswarm

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"flotilla/peerwire"
	"flotilla/peerwire/mse"
	"flotilla/swarm/swarmtest"
)

// sendPex connects to d as a raw peer advertising ut_pex and sends it
// one PEX message of added; it returns once d has handled it.
func sendPex(t *testing.T, d *testDownload, tt *swarmtest.Torrent, added []peerwire.PexPeer) {
	t.Helper()
	c, r := rawPeer(t, d, tt, "127.0.0.1", "-XX0001-pexflagsflag")
	ext := peerwire.ExtHandshake{M: map[string]int{peerwire.ExtPexName: 7}}
	writeMsgs(t, c,
		peerwire.Message{ID: peerwire.Extended, ExtID: peerwire.ExtHandshakeID, ExtPayload: ext.Encode()},
		peerwire.Message{ID: peerwire.Extended, ExtID: ourPexID, ExtPayload: peerwire.PexMsg{Added: added}.AppendTo(nil)},
		peerwire.Message{ID: peerwire.Request, Index: 0, Begin: 0, Length: peerwire.BlockSize})
	// The answer to the request sent after the PEX message (a reject, or
	// the block from a seed that unchoked us) says it was handled.
	for {
		m, err := r.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if m.ID == peerwire.Reject || m.ID == peerwire.Piece {
			return
		}
	}
}

// TestPexFlagsSeedAndEncryption: while seeding, peers flagged as seeds
// (0x02) are not taken; a leecher takes them all, and dials those that
// prefer encryption (0x01) with MSE first, the others in plaintext first.
func TestPexFlagsSeedAndEncryption(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	enc := netip.MustParseAddrPort("127.9.0.1:1")
	seed := netip.MustParseAddrPort("127.9.0.2:1")
	plain := netip.MustParseAddrPort("127.9.0.3:1")
	added := []peerwire.PexPeer{{Addr: enc, Flags: peerwire.PexPrefersEncryption},
		{Addr: seed, Flags: peerwire.PexSeed}, {Addr: plain}}

	seeder := newTestSeeder(t, tt, 1)
	sendPex(t, seeder, tt, added)
	onOwner(t, seeder.Local(), func() {
		if c := seeder.Local().dialer.cands[seed]; c != nil {
			t.Error("a seeding swarm took a seed from PEX")
		}
		if c := seeder.Local().dialer.cands[plain]; c == nil {
			t.Error("a seeding swarm dropped a leecher from PEX")
		}
	})

	cfg := testConfig(tt, swarmtest.NewStorage(tt.Info, nil), 2)
	cfg.Listener = listen(t, "127.0.0.1")
	leecher := newTestDownload(t, cfg)
	sendPex(t, leecher, tt, added)
	onOwner(t, leecher.Local(), func() {
		cands := leecher.Local().dialer.cands
		for a, plainFirst := range map[netip.AddrPort]bool{enc: false, seed: true, plain: true} {
			if c := cands[a]; c == nil || c.plainFirst != plainFirst {
				t.Errorf("candidate %v: %+v, want plainFirst %v", a, c, plainFirst)
			}
		}
	})
	// A tracker's peer, not heard of before: MSE first.
	tracked := netip.MustParseAddrPort("127.9.0.4:1")
	leecher.Local().AddPeers([]netip.AddrPort{tracked})
	onOwner(t, leecher.Local(), func() {
		if c := leecher.Local().dialer.cands[tracked]; c == nil || c.plainFirst {
			t.Errorf("candidate %v from a tracker: %+v", tracked, c)
		}
	})
}

// TestPexPlainFirstFallsBackToMSE: a PEX peer without the encryption
// flag that in fact requires encryption is reached all the same: the
// plaintext handshake it refuses is followed by MSE.
func TestPexPlainFirstFallsBackToMSE(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20+99, 64<<10)
	scfg := testConfig(tt, swarmtest.NewStorage(tt.Info, tt.Data), 1)
	scfg.Listener = listen(t, "127.0.0.1")
	scfg.Seed = true
	scfg.Encryption = mse.Require
	seeder := newTestDownload(t, scfg)

	st := swarmtest.NewStorage(tt.Info, nil)
	cfg := testConfig(tt, st, 2)
	cfg.Listener = listen(t, "127.0.0.1")
	cfg.Encryption = mse.Prefer
	leecher := newTestDownload(t, cfg)
	sendPex(t, leecher, tt, []peerwire.PexPeer{{Addr: addrOf(t, seeder)}})
	waitComplete(t, leecher, 30*time.Second)
	if !bytes.Equal(st.Bytes(), tt.Data) {
		t.Fatal("downloaded data differs")
	}
}
