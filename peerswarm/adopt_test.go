package peerswarm

import (
	"bytes"
	"net"
	"testing"
	"time"

	"flotilla/peerwire"
	"flotilla/swarm/swarmtest"
)

// greetLikeFetch connects to seeder as a magnet's metadata fetch does
// (handshake, extension handshake, HaveNone) and returns the connection
// as a Handover.
func greetLikeFetch(t *testing.T, seeder *testDownload, tt *swarmtest.Torrent) peerwire.Handover {
	t.Helper()
	c, err := net.Dial("tcp", seeder.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	var id [20]byte
	copy(id[:], "-FL0001-metadatafetc")
	if err := peerwire.WriteHandshake(c, peerwire.Handshake{Reserved: peerwire.DefaultReserved(), InfoHash: tt.InfoHash, PeerID: id}); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	theirs, err := peerwire.ReadHandshake(c)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Time{})
	w := peerwire.NewWriter(c)
	w.WriteExtHandshake(peerwire.ExtHandshake{M: map[string]int{peerwire.ExtMetadataName: ourMetadataID}})
	w.WriteSimple(peerwire.HaveNone)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return peerwire.Handover{Conn: c, Addr: addrOf(t, seeder), Outgoing: true, Theirs: theirs, Greeted: true}
}

// TestAdoptDownloadsOnHandedOverConnection: a leecher with no listener
// and no peer to dial downloads everything over a connection another
// owner set up (as a magnet's metadata fetch hands it over), greeting it
// without a second HaveNone.
func TestAdoptDownloadsOnHandedOverConnection(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20+777, 256<<10)
	seeder := newTestSeeder(t, tt, 1)
	h := greetLikeFetch(t, seeder, tt)
	st := swarmtest.NewStorage(tt.Info, nil)
	leecher := newTestDownload(t, testConfig(tt, st, 2))
	leecher.Local().Adopt([]peerwire.Handover{h})
	waitComplete(t, leecher, 20*time.Second)
	if !bytes.Equal(st.Bytes(), tt.Data) {
		t.Fatal("downloaded data differs")
	}
}

// TestAdoptRefusesOtherTorrent: a handed-over connection for another
// info-hash is closed, not adopted.
func TestAdoptRefusesOtherTorrent(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 64<<10, 16<<10)
	a, b := net.Pipe()
	defer b.Close()
	leecher := newTestDownload(t, testConfig(tt, swarmtest.NewStorage(tt.Info, nil), 2))
	var other [20]byte
	other[0] = 1
	leecher.Local().Adopt([]peerwire.Handover{{Conn: a, Theirs: peerwire.Handshake{InfoHash: other}, Outgoing: true}})
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := b.Read(make([]byte, 1)); err == nil {
		t.Fatal("the connection for another torrent is still open")
	}
	if n := leecher.Local().Status().Peers; n != 0 {
		t.Fatalf("%d peers", n)
	}
}
