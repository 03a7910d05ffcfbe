package swarmtest_test

import (
	"bytes"
	"context"
	"testing"

	"flotilla/swarm"
	"flotilla/swarm/swarmtest"
)

var _ swarm.Storage = (*swarmtest.Storage)(nil)

func TestTorrentIsReproducible(t *testing.T) {
	a, b := swarmtest.NewTorrent(t, 100_003, 16<<10), swarmtest.NewTorrent(t, 100_003, 16<<10)
	if a.InfoHash != b.InfoHash || !bytes.Equal(a.Data, b.Data) {
		t.Fatal("two torrents of the same geometry differ")
	}
	if a.Data[len(a.Data)-1] == 0 && a.Data[len(a.Data)-2] == 0 && a.Data[len(a.Data)-3] == 0 {
		t.Fatal("the tail of the payload is not filled")
	}
	last := a.Info.NumPieces() - 1
	if !bytes.Equal(a.Piece(last), a.Data[a.Info.PieceOffset(last):]) {
		t.Fatal("Piece(last) is not the end of the payload")
	}
}

func TestStorage(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 5*16<<10+7, 16<<10)
	st := swarmtest.NewPartialStorage(tt.Info, tt.Data, func(p int) bool { return p%2 == 0 })
	if got := st.Have(); got[0] != 0b10101000 {
		t.Fatalf("have %08b; want the even pieces of 6", got[0])
	}
	buf := make([]byte, 10)
	if _, err := st.ReadBlock(1, 0, buf); err == nil {
		t.Fatal("read a piece not held")
	}
	for p := range tt.Info.NumPieces() {
		if err := st.Submit(context.Background(), p, tt.Piece(p)); err != nil {
			t.Fatal(err)
		}
	}
	if st.Submits() != 3 || len(st.Written()) != 3 {
		t.Fatalf("%d submits, %d written; want the 3 odd pieces", st.Submits(), len(st.Written()))
	}
	if !bytes.Equal(st.Bytes(), tt.Data) {
		t.Fatal("stored bytes differ")
	}
	if err := st.Submit(context.Background(), 0, []byte("short")); err == nil {
		t.Fatal("a piece of the wrong length was accepted")
	}
	if st.Err() != nil || swarmtest.NewStorage(tt.Info, nil).Have()[0] != 0 {
		t.Fatal("an empty storage holds something")
	}
}
