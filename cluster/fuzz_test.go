package cluster

import (
	"errors"
	"testing"
)

// FuzzDecodeMeta: metadata from other members never panics the decoder, and
// whatever decodes re-encodes to the same Meta.
func FuzzDecodeMeta(f *testing.F) {
	for _, m := range []Meta{
		{},
		{Role: RoleCoordinator, DelegateAddr: "10.0.0.1:7947", Version: "v0.4.0", Slots: 200, Bandwidth: 12500000},
		{Role: RoleSwarmNode, DelegateAddr: "[fd00::1]:7947", Slots: 50},
	} {
		b, err := encodeWire(wireMeta{Meta: m})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		b, _ = encodeWire(wireMeta{Meta: m, Leaving: true})
		f.Add(b)
	}
	f.Add([]byte{0xc1})
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := decodeWire(b)
		if err != nil {
			if !errors.Is(err, ErrBadMeta) {
				t.Fatalf("error %v does not wrap ErrBadMeta", err)
			}
			return
		}
		b2, err := encodeWire(w)
		if err != nil {
			t.Fatal(err)
		}
		w2, err := decodeWire(b2)
		if err != nil || w2 != w {
			t.Fatalf("round trip: %+v -> %+v, %v", w, w2, err)
		}
	})
}

// FuzzParseKey: any text either parses to a key whose text form parses back
// to it, or fails with ErrBadKey.
func FuzzParseKey(f *testing.F) {
	f.Add("flotilla-key-v1:" + "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8")
	f.Add("flotilla-key-v1:")
	f.Add("flotilla-key-v1:====")
	f.Add(" flotilla-key-v1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n")
	f.Add("flotilla-key-v2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err != nil {
			if !errors.Is(err, ErrBadKey) {
				t.Fatalf("error %v does not wrap ErrBadKey", err)
			}
			return
		}
		k2, err := ParseKey(k.Text())
		if err != nil || k2 != k {
			t.Fatalf("round trip failed: %v", err)
		}
	})
}
