package peerwire

import (
	"errors"
	"testing"
)

func TestBitfield(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 63, 64, 65, 1000} {
		b := New(n)
		if len(b) != (n+7)/8 || b.Count() != 0 {
			t.Fatalf("New(%d): len %d count %d", n, len(b), b.Count())
		}
		for i := 0; i < n; i += 3 {
			b.Set(i)
		}
		want := (n + 2) / 3
		if b.Count() != want {
			t.Fatalf("n=%d: Count = %d, want %d", n, b.Count(), want)
		}
		for i := range n {
			if b.Has(i) != (i%3 == 0) {
				t.Fatalf("n=%d: Has(%d) = %v", n, i, b.Has(i))
			}
		}
		if err := Validate(b.Bytes(), n); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		for i := 0; i < n; i += 3 {
			b.Clear(i)
		}
		if b.Count() != 0 {
			t.Fatalf("n=%d: Count after Clear = %d", n, b.Count())
		}
		full := NewFull(n)
		if full.Count() != n || !full.All(n) || Validate(full, n) != nil {
			t.Fatalf("NewFull(%d): count %d", n, full.Count())
		}
		if n > 0 && b.All(n) {
			t.Fatalf("empty All(%d) = true", n)
		}
	}
}

func TestBitfieldBitOrder(t *testing.T) {
	b := New(16)
	b.Set(0)
	b.Set(9)
	if b[0] != 0x80 || b[1] != 0x40 {
		t.Fatalf("bit order wrong: %08b %08b", b[0], b[1])
	}
}

func TestBitfieldOutOfRangeIsSafe(t *testing.T) {
	b := New(10)
	for _, i := range []int{-1, 16, 1 << 40} {
		b.Set(i)
		b.Clear(i)
		if b.Has(i) {
			t.Fatalf("Has(%d) = true", i)
		}
	}
	if b.Count() != 0 {
		t.Fatal("out-of-range Set changed bits")
	}
	var nilBF Bitfield
	nilBF.Set(0)
	if nilBF.Has(0) || nilBF.Count() != 0 {
		t.Fatal("nil bitfield misbehaves")
	}
	if New(-5) == nil || len(New(-5)) != 0 {
		t.Fatal("New(-5)")
	}
}

func TestBitfieldValidate(t *testing.T) {
	for _, tc := range []struct {
		b  []byte
		n  int
		ok bool
	}{
		{nil, 0, true},
		{[]byte{0}, 0, false},
		{[]byte{0xff}, 8, true},
		{[]byte{0xff, 0x80}, 9, true},
		{[]byte{0xff, 0xC0}, 9, false},
		{[]byte{0xff, 0x01}, 9, false},
		{[]byte{0xff}, 9, false},
		{[]byte{0xff, 0, 0}, 9, false},
		{[]byte{0xfe}, 7, true},
		{[]byte{0xff}, 7, false},
		{nil, -1, false},
	} {
		err := Validate(tc.b, tc.n)
		if (err == nil) != tc.ok {
			t.Errorf("Validate(%x, %d) = %v", tc.b, tc.n, err)
		}
		if err != nil && !errors.Is(err, ErrBadBitfield) {
			t.Errorf("Validate(%x, %d) = %v, not ErrBadBitfield", tc.b, tc.n, err)
		}
		c, err := FromBytes(tc.b, tc.n)
		if (err == nil) != tc.ok {
			t.Errorf("FromBytes(%x, %d) = %v", tc.b, tc.n, err)
		}
		if err == nil && len(c) > 0 && &c[0] == &tc.b[0] {
			t.Error("FromBytes did not copy")
		}
	}
}

func TestBitfieldClone(t *testing.T) {
	b := New(9)
	b.Set(3)
	c := b.Clone()
	c.Set(4)
	if b.Has(4) || !c.Has(3) {
		t.Fatal("Clone shares storage")
	}
}
