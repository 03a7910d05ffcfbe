package peerwire

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"testing"

	"flotilla/internal/fuzzcorpus"
)

func TestPexMsgRoundTrip(t *testing.T) {
	m := PexMsg{
		Added: []PexPeer{
			{netip.MustParseAddrPort("10.0.0.1:6881"), PexReachable | PexSeed},
			{netip.MustParseAddrPort("10.0.0.2:1"), 0},
			{netip.MustParseAddrPort("[2001:db8::1]:51413"), PexPrefersEncryption | PexUTP | PexHolepunch},
		},
		Dropped: []netip.AddrPort{netip.MustParseAddrPort("192.168.1.9:80"), netip.MustParseAddrPort("[::2]:9")},
	}
	enc := m.AppendTo(nil)
	want := "d5:added12:\x0a\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\x00\x017:added.f2:\x12\x006:added618:" +
		"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\xc8\xd58:added6.f1:\x0d" +
		"7:dropped6:\xc0\xa8\x01\x09\x00\x508:dropped618:\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x09e"
	if string(enc) != want {
		t.Fatalf("encoded %q\nwant    %q", enc, want)
	}
	got, err := ParsePexMsg(enc)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	empty, err := ParsePexMsg(PexMsg{}.AppendTo(nil))
	if err != nil || len(empty.Added)+len(empty.Dropped) != 0 {
		t.Fatalf("empty: %+v %v", empty, err)
	}
}

// TestPexMsgBounds: at most MaxPexPeers added and dropped are written and
// read; the rest of a larger message is ignored, not an error.
func TestPexMsgBounds(t *testing.T) {
	var m PexMsg
	for i := range 3 * MaxPexPeers {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 1000)
		m.Added = append(m.Added, PexPeer{Addr: a})
		m.Dropped = append(m.Dropped, a)
	}
	got, err := ParsePexMsg(m.AppendTo(nil))
	if err != nil || len(got.Added) != MaxPexPeers || len(got.Dropped) != MaxPexPeers {
		t.Fatalf("encoded: %d added %d dropped, %v", len(got.Added), len(got.Dropped), err)
	}
	// A hostile message: 1000 of each, by hand.
	var list []byte
	for i := range 1000 {
		list = append(list, 10, 2, byte(i>>8), byte(i), 0, 1)
	}
	raw := fmt.Sprintf("d5:added%d:%s7:dropped%d:%se", len(list), list, len(list), list)
	got, err = ParsePexMsg([]byte(raw))
	if err != nil || len(got.Added) != MaxPexPeers || len(got.Dropped) != MaxPexPeers {
		t.Fatalf("hostile: %d added %d dropped, %v", len(got.Added), len(got.Dropped), err)
	}
}

func TestPexMsgLenient(t *testing.T) {
	// Unsorted keys, an unknown key, a wrong-typed key, short flags, a
	// partial trailing entry, port 0 and 0.0.0.0 skipped, a mapped v6.
	raw := "d7:droppedi3e1:xli1ee5:added15:\x01\x02\x03\x04\x00\x05\x00\x00\x00\x00\x00\x05\x01\x02\x03" +
		"6:added636:\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x05\x06\x07\x08\x00\x07" +
		"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00e"
	got, err := ParsePexMsg([]byte(raw))
	want := PexMsg{Added: []PexPeer{
		{Addr: netip.MustParseAddrPort("1.2.3.4:5")},
		{Addr: netip.MustParseAddrPort("5.6.7.8:7")},
	}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, %v", got, err)
	}
	for _, bad := range []string{"", "le", "d5:added", "de1:x", "d5:added6:abcdef5:added"} {
		if _, err := ParsePexMsg([]byte(bad)); !errors.Is(err, ErrBadPexMsg) || !errors.Is(err, ErrProtocol) {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
}

func FuzzPexMsg(f *testing.F) {
	f.Add([]byte("d5:added6:\x7f\x00\x00\x01\x1a\xe17:added.f1:\x107:dropped0:e"))
	f.Add([]byte("d6:added618:\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\xc8\xd58:dropped66:abcdefe"))
	f.Add([]byte("de"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParsePexMsg(data)
		if err != nil {
			if !errors.Is(err, ErrBadPexMsg) {
				t.Fatalf("unexpected error type: %v", err)
			}
			return
		}
		if len(m.Added) > MaxPexPeers || len(m.Dropped) > MaxPexPeers {
			t.Fatalf("%d added, %d dropped", len(m.Added), len(m.Dropped))
		}
		enc := m.AppendTo(nil)
		m2, err := ParsePexMsg(enc)
		if err != nil || len(m2.Added) != len(m.Added) || len(m2.Dropped) != len(m.Dropped) {
			t.Fatalf("re-encoding %q gives %+v, %v", enc, m2, err)
		}
		if enc2 := m2.AppendTo(nil); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable: %q vs %q", enc, enc2)
		}
	})
}

// TestPexSeedCorpus keeps the committed seeds meaningful: a seed named
// bad-* must be refused, every other one accepted.
func TestPexSeedCorpus(t *testing.T) {
	fuzzcorpus.CheckBad(t, "FuzzPexMsg", 6, func(b []byte) error {
		_, err := ParsePexMsg(b)
		return err
	})
}
