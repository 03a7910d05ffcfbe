package cluster

import (
	"errors"
	"runtime"
	"testing"
)

// TestDecodeMetaDeclaredLengthsBounded: metadata whose strings, binaries
// or maps declare lengths far beyond its size is refused before msgpack
// allocates by those lengths. Before the check a 40-byte input made the
// decoder allocate 1 MiB (found by FuzzDecodeMeta, which then ran out of
// memory in its workers).
func TestDecodeMetaDeclaredLengthsBounded(t *testing.T) {
	cases := map[string][]byte{
		"str32 of 4 GiB":            {0x81, 0xa1, 'r', 0xdb, 0xff, 0xff, 0xff, 0xff, 'c'},
		"bin32 of 256 MiB":          {0x81, 0xa1, 'x', 0xc6, 0x10, 0x00, 0x00, 0x00, 0x00},
		"map32 of 2.5e9 entries":    {0x81, 0xa1, 'x', 0xdf, 0x95, 0x46, 0xd1, 0xec, 0x01, 0x01},
		"array32 of 4e9 elements":   {0x81, 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01},
		"map of 65535 entries":      {0xde, 0xff, 0xff, 0xa1, 'r', 0xa1, 'c'},
		"ext32 of 16 MiB":           {0x81, 0xa1, 'x', 0xc9, 0x01, 0x00, 0x00, 0x00, 0x01},
		"the fuzzer's crash (40 B)": []byte("\x86\xb3bߜ\xeeڲ\xaaN\xee\x16ߕF\xd1\xec\x87\xe4\xd8d\xc6\xe0\xfe7\xa5\xb6\"e\f\xc4\xcb\xe9\xd1\xda*\xfb\x1aš\x98"),
	}
	for name, b := range cases {
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		const runs = 20
		var err error
		for range runs {
			_, err = decodeWire(b)
		}
		runtime.ReadMemStats(&m1)
		if !errors.Is(err, ErrBadMeta) {
			t.Errorf("%s: decodeWire = %v, want ErrBadMeta", name, err)
		}
		if per := (m1.TotalAlloc - m0.TotalAlloc) / runs; per > 16<<10 {
			t.Errorf("%s: %d bytes allocated to refuse %d bytes of metadata", name, per, len(b))
		}
	}
}

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
