package main

import (
	"math"
	"runtime/debug"
	"testing"
)

func TestPieceMemory(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(prev)

	// 1 MiB pieces: the fixed budget, split two thirds / one third, and
	// the soft limit untouched.
	debug.SetMemoryLimit(math.MaxInt64)
	in, wb := pieceMemory(1<<20, true)
	if in+wb != pieceBufferMemory || in != 16<<20 || wb != 8<<20 {
		t.Fatalf("1 MiB pieces: in flight %d, write budget %d", in, wb)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("soft limit changed to %d for 1 MiB pieces", got)
	}

	// 16 MiB pieces: six pieces, and a soft limit raised by the excess.
	in, wb = pieceMemory(16<<20, true)
	if in != 64<<20 || wb != 32<<20 {
		t.Fatalf("16 MiB pieces: in flight %d, write budget %d", in, wb)
	}
	if got, want := debug.SetMemoryLimit(-1), int64(softMemoryLimit+96<<20-pieceBufferMemory); got != want {
		t.Fatalf("soft limit %d for 16 MiB pieces, want %d", got, want)
	}

	// An explicit GOMEMLIMIT (setLimit false) is left alone.
	debug.SetMemoryLimit(math.MaxInt64)
	pieceMemory(16<<20, false)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("soft limit changed to %d despite GOMEMLIMIT", got)
	}
}
