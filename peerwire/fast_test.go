package peerwire

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
)

func aaHash() [20]byte {
	var h [20]byte
	for i := range h {
		h[i] = 0xaa
	}
	return h
}

// The vectors published in BEP 6.
func TestAllowedFastSetBEP6Vectors(t *testing.T) {
	ip := netip.MustParseAddr("80.4.4.200")
	for _, tc := range []struct {
		k    int
		want []uint32
	}{
		{7, []uint32{1059, 431, 808, 1217, 287, 376, 1188}},
		{9, []uint32{1059, 431, 808, 1217, 287, 376, 1188, 353, 508}},
	} {
		got, err := AllowedFastSet(ip, aaHash(), 1313, tc.k)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("k=%d: got %v, want %v", tc.k, got, tc.want)
		}
	}
}

func TestAllowedFastSetProperties(t *testing.T) {
	h := aaHash()
	a, _ := AllowedFastSet(netip.MustParseAddr("80.4.4.1"), h, 1313, 7)
	b, _ := AllowedFastSet(netip.MustParseAddr("::ffff:80.4.4.200"), h, 1313, 7)
	c, _ := AllowedFastSet(netip.MustParseAddr("80.4.5.200"), h, 1313, 7)
	want, _ := AllowedFastSet(netip.MustParseAddr("80.4.4.200"), h, 1313, 7)
	if !slices.Equal(a, want) || !slices.Equal(b, want) {
		t.Fatalf("same /24 gave different sets: %v %v %v", a, b, want)
	}
	if slices.Equal(c, want) {
		t.Fatal("different /24 gave the same set")
	}
	// k capped at the piece count: every piece exactly once.
	small, err := AllowedFastSet(netip.MustParseAddr("10.0.0.1"), h, 3, 10)
	if err != nil || len(small) != 3 {
		t.Fatalf("small torrent: %v %v", small, err)
	}
	s := slices.Clone(small)
	slices.Sort(s)
	if !slices.Equal(s, []uint32{0, 1, 2}) {
		t.Fatalf("small torrent set %v", small)
	}
	// Large k uses the bitfield path and agrees with the small-k prefix.
	big, err := AllowedFastSet(netip.MustParseAddr("80.4.4.200"), h, 1313, 1313)
	if err != nil || len(big) != 1313 || !slices.Equal(big[:7], want) {
		t.Fatalf("k=numPieces: len %d, prefix %v, %v", len(big), big[:min(7, len(big))], err)
	}
	if got, err := AllowedFastSet(netip.MustParseAddr("10.0.0.1"), h, 0, 10); err != nil || len(got) != 0 {
		t.Fatalf("no pieces: %v %v", got, err)
	}
	if _, err := AllowedFastSet(netip.MustParseAddr("2001:db8::1"), h, 100, 10); !errors.Is(err, ErrNotIPv4) {
		t.Fatalf("IPv6: %v", err)
	}
	if _, err := AllowedFastSet(netip.Addr{}, h, 100, 10); !errors.Is(err, ErrNotIPv4) {
		t.Fatalf("zero addr: %v", err)
	}
}
