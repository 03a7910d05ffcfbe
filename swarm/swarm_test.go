package swarm

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

func addrOf(t testing.TB, d *Download) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(d.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

func TestSeederToLeecher(t *testing.T) {
	tt := makeTorrent(t, 5<<20+12345, 256<<10)
	seedCfg := testConfig(tt, newMemStorage(tt.t.Info, tt.data, true), 1)
	seedCfg.Listener = listen(t, "127.0.0.1")
	seedCfg.Seed = true
	seeder := newTestDownload(t, seedCfg)
	select {
	case <-seeder.Complete():
	default:
		t.Fatal("seeder with complete storage not complete")
	}

	st := newMemStorage(tt.t.Info, nil, false)
	leechCfg := testConfig(tt, st, 2)
	leechCfg.Listener = listen(t, "127.0.0.1")
	leecher := newTestDownload(t, leechCfg)
	leecher.AddPeers([]netip.AddrPort{addrOf(t, seeder)})
	waitComplete(t, leecher, 20*time.Second)
	if !bytes.Equal(st.bytes(), tt.data) {
		t.Fatal("downloaded data differs")
	}
	s := leecher.Status()
	if !s.Complete || s.Written != s.Pieces || s.BytesDone != int64(len(tt.data)) {
		t.Fatalf("status %+v", s)
	}
	up, down, left := leecher.Stats()
	if left != 0 || down < int64(len(tt.data)) || up != 0 {
		t.Fatalf("stats up %d down %d left %d", up, down, left)
	}
	if st.submits != tt.t.Info.NumPieces() {
		t.Fatalf("%d submits for %d pieces", st.submits, tt.t.Info.NumPieces())
	}
}
