package delegate

import (
	"bytes"
	"testing"

	"flotilla/internal/bufpool"
	"flotilla/internal/directio"
	"flotilla/swarm/swarmtest"
)

// TestNodeStoreDirectWrites: a node keeps the pieces it downloads for
// upload. Pieces whose buffer, offset and length are aligned go through
// the O_DIRECT descriptor (where the file system does direct I/O), the
// short last piece through the page cache; every byte reads back, and the
// pool hands the same buffers out again.
func TestNodeStoreDirectWrites(t *testing.T) {
	const pl = 64 << 10
	tt := swarmtest.NewTorrent(t, 5*pl+1000, pl) // a short last piece
	dir := t.TempDir()
	s, err := openNodeStore(dir, Job{ID: 1, Info: tt.Info, InfoHash: tt.InfoHash})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.pool = bufpool.New(tt.Info.PieceLength, 2)
	direct := s.dfd >= 0
	if !direct {
		t.Logf("the file system of %s does no direct I/O: checking the buffered path only", dir)
	}
	for p := range tt.Info.NumPieces() {
		buf := s.GetBuffer(p)
		off := tt.Info.PieceOffset(p)
		n := copy(buf, tt.Data[off:off+tt.Info.PieceLen(p)])
		if int64(n) != tt.Info.PieceLen(p) || len(buf) != n {
			t.Fatalf("piece %d: buffer of %d bytes, want %d", p, len(buf), tt.Info.PieceLen(p))
		}
		aligned := directio.Aligned(buf, off, s.align)
		if direct && p < tt.Info.NumPieces()-1 && !aligned {
			t.Fatalf("piece %d: a pool buffer at %d is not aligned to %d for direct I/O", p, off, s.align)
		}
		if err := s.put(p, buf); err != nil {
			t.Fatalf("put %d: %v", p, err)
		}
		s.PutBuffer(buf)
		if again := s.GetBuffer(p); &again[0] != &buf[0] {
			t.Fatalf("piece %d: the pool did not give the returned buffer back", p)
		} else {
			s.PutBuffer(again)
		}
	}
	if direct && s.dfd < 0 {
		t.Fatal("the direct descriptor was given up: a direct write was refused")
	}
	for p := range tt.Info.NumPieces() {
		got := make([]byte, tt.Info.PieceLen(p))
		if _, err := s.ReadBlock(p, 0, got); err != nil {
			t.Fatalf("read piece %d: %v", p, err)
		}
		off := tt.Info.PieceOffset(p)
		if !bytes.Equal(got, tt.Data[off:off+int64(len(got))]) {
			t.Fatalf("piece %d reads back different bytes", p)
		}
	}
	s.PutBuffer(make([]byte, 10)) // not a piece buffer: not pooled
	for range 3 {
		if b := s.GetBuffer(0); cap(b) != pl {
			t.Fatalf("pool gave a buffer of capacity %d", cap(b))
		}
	}
}

// Once the coordinator has stored every piece (a finished job the node
// keeps seeding; the node holds only some of them), the store's buffer
// pool is emptied and stays empty: the buffers go to the collector
// instead of being held while it seeds.
func TestNodeStorePoolEmptiedWhenAllStored(t *testing.T) {
	const pl = 64 << 10
	tt := swarmtest.NewTorrent(t, 4*pl, pl)
	s, err := openNodeStore(t.TempDir(), Job{ID: 1, Info: tt.Info, InfoHash: tt.InfoHash})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.pool = bufpool.New(pl, 4)
	for p := range 4 {
		s.PutBuffer(s.GetBuffer(p))
		s.PutBuffer(make([]byte, pl))
	}
	if s.pool.Len() == 0 {
		t.Fatal("the pool kept no buffer")
	}
	s.coordinatorStored([]int{0, 1, 2})
	if s.pool.Len() == 0 {
		t.Fatal("the pool was emptied before every piece was stored")
	}
	s.coordinatorStored([]int{3})
	if n := s.pool.Len(); n != 0 {
		t.Fatalf("%d buffers pooled once every piece was stored, want 0", n)
	}
	s.PutBuffer(make([]byte, pl))
	if n := s.pool.Len(); n != 0 {
		t.Fatalf("a buffer given back after that was pooled (%d), want it dropped", n)
	}
	if b := s.GetBuffer(1); len(b) != pl {
		t.Fatalf("GetBuffer after the pool was emptied: %d bytes, want %d", len(b), pl)
	}
}
