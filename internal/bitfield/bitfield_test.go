package bitfield

import (
	"bytes"
	"testing"
)

// handRolled is the expression the module used before this package, in
// piecestore, delegate and swarm: the bytes Set produces must be the same,
// since they are written to disk and sent on the wire.
func handRolled(n int, set func(int) bool) []byte {
	b := make([]byte, (n+7)/8)
	for p := 0; p < n; p++ {
		if set(p) {
			b[p/8] |= 0x80 >> (p % 8)
		}
	}
	return b
}

func TestBytesMatchHandRolled(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 63, 64, 65, 1000} {
		for _, m := range []int{1, 2, 3, 7} {
			set := func(p int) bool { return p%m == 0 }
			b := New(n)
			for p := 0; p < n; p++ {
				if set(p) {
					b.Set(p)
				}
			}
			want := handRolled(n, set)
			if !bytes.Equal(b.Bytes(), want) {
				t.Fatalf("n=%d m=%d: % x, hand-rolled % x", n, m, b.Bytes(), want)
			}
			for p := 0; p < n; p++ {
				if b.Has(p) != (want[p/8]&(0x80>>(p%8)) != 0) {
					t.Fatalf("n=%d m=%d: Has(%d) disagrees", n, m, p)
				}
			}
		}
		if !bytes.Equal(Full(n), handRolled(n, func(int) bool { return true })) {
			t.Fatalf("Full(%d) = % x", n, Full(n))
		}
	}
}

func TestBitfield(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 63, 64, 65, 1000} {
		b := New(n)
		if len(b) != Len(n) || b.Count() != 0 {
			t.Fatalf("New(%d): len %d count %d", n, len(b), b.Count())
		}
		for i := 0; i < n; i += 3 {
			b.Set(i)
		}
		if want := (n + 2) / 3; b.Count() != want {
			t.Fatalf("n=%d: Count = %d, want %d", n, b.Count(), want)
		}
		if err := Validate(b, n); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		c := b.Clone()
		for i := 0; i < n; i += 3 {
			b.Clear(i)
		}
		if b.Count() != 0 || c.Count() != (n+2)/3 {
			t.Fatalf("n=%d: Count after Clear = %d, clone %d", n, b.Count(), c.Count())
		}
		if full := Full(n); full.Count() != n || !full.All(n) {
			t.Fatalf("Full(%d): count %d", n, full.Count())
		}
		if n > 0 && b.All(n) {
			t.Fatalf("empty All(%d) = true", n)
		}
	}
}

func TestOutOfRangeIsSafe(t *testing.T) {
	b := New(10)
	for _, i := range []int{-1, 16, 1 << 40} {
		b.Set(i)
		b.Clear(i)
		if b.Has(i) {
			t.Fatalf("Has(%d) = true", i)
		}
	}
	var nilBF Bitfield
	nilBF.Set(0)
	if nilBF.Has(0) || nilBF.Count() != 0 || len(New(-5)) != 0 || Len(-5) != 0 {
		t.Fatal("nil or negative bitfield misbehaves")
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		b  []byte
		n  int
		ok bool
	}{
		{nil, 0, true},
		{[]byte{0xff}, 8, true},
		{[]byte{0xe0}, 3, true},
		{[]byte{0xf0}, 3, false}, // spare bit
		{[]byte{0, 0}, 8, false}, // too long
		{[]byte{}, 1, false},     // too short
		{nil, -1, false},
		{[]byte{0}, 0, false},
		{[]byte{0xff, 0x80}, 9, true},
		{[]byte{0xff, 0xC0}, 9, false},
		{[]byte{0xff, 0x01}, 9, false},
		{[]byte{0xff}, 9, false},
		{[]byte{0xff, 0, 0}, 9, false},
		{[]byte{0xfe}, 7, true},
		{[]byte{0xff}, 7, false},
	} {
		if err := Validate(tc.b, tc.n); (err == nil) != tc.ok {
			t.Errorf("Validate(%x, %d) = %v", tc.b, tc.n, err)
		}
	}
}

// TestGoldenBytes pins the bytes written to disk and sent on the wire.
func TestGoldenBytes(t *testing.T) {
	b := New(20)
	for _, p := range []int{0, 9, 10, 17, 19} {
		b.Set(p)
	}
	if want := []byte{0x80, 0x60, 0x50}; !bytes.Equal(b.Bytes(), want) {
		t.Fatalf("% x, want % x", b.Bytes(), want)
	}
	if want := []byte{0xff, 0xff, 0xf0}; !bytes.Equal(Full(20), want) {
		t.Fatalf("Full(20) = % x, want % x", Full(20), want)
	}
}
