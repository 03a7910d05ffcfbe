package main

import "testing"

func TestPieceMemory(t *testing.T) {
	// 1 MiB pieces: the fixed budget, split two thirds / one third, and
	// nothing over it.
	in, wb, over := pieceMemory(1 << 20)
	if in+wb != pieceBufferMemory || in != 16<<20 || wb != 8<<20 || over != 0 {
		t.Fatalf("1 MiB pieces: in flight %d, write budget %d, over %d", in, wb, over)
	}
	// 16 MiB pieces: six pieces, and the excess to add to the soft limit.
	in, wb, over = pieceMemory(16 << 20)
	if in != 64<<20 || wb != 32<<20 || over != 96<<20-pieceBufferMemory {
		t.Fatalf("16 MiB pieces: in flight %d, write budget %d, over %d", in, wb, over)
	}
}
