package metainfo

import (
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
)

func TestParseMagnet(t *testing.T) {
	hexHash := "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
	var h [20]byte
	hex.Decode(h[:], []byte(hexHash))
	cases := []struct {
		uri  string
		want Magnet
	}{
		{"magnet:?xt=urn:btih:" + hexHash, Magnet{InfoHash: h}},
		{"magnet:?xt=urn:btih:C12FE1C06BBA254A9DC9F519B335AA7C1367A88A&dn=My+File%21", Magnet{InfoHash: h, Name: "My File!"}},
		{"magnet:?xt=urn:btih:YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK", Magnet{InfoHash: h}},
		{"MAGNET:?xt=URN:BTIH:yex6dqdlxisuvhoj6um3gnnkpqjwpkek", Magnet{InfoHash: h}},
		{"magnet:?dn=x&tr=http%3A%2F%2Ft1%2Fa&xt=urn:btmh:1220abcd&xt=urn:btih:" + hexHash +
			"&tr=udp://t2:80&tr=http%3A%2F%2Ft1%2Fa&tr=&x.pe=127.0.0.1:6881&x.pe=[::1]:51413&foo=bar",
			Magnet{InfoHash: h, Name: "x", Trackers: []string{"http://t1/a", "udp://t2:80"}, Peers: []string{"127.0.0.1:6881", "[::1]:51413"}}},
	}
	for _, c := range cases {
		m, err := ParseMagnet(c.uri)
		if err != nil {
			t.Errorf("%s: %v", c.uri, err)
			continue
		}
		if !reflect.DeepEqual(*m, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.uri, *m, c.want)
		}
		m2, err := ParseMagnet(m.String())
		if err != nil || !reflect.DeepEqual(m2, m) {
			t.Errorf("round trip of %s via %s: %v %+v", c.uri, m.String(), err, m2)
		}
	}
}

func TestParseMagnetErrors(t *testing.T) {
	hexHash := "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
	bad := []string{
		"",
		"http://example/?xt=urn:btih:" + hexHash,
		"magnet:xt=urn:btih:" + hexHash,
		"magnet:?dn=x",
		"magnet:?XT=urn:btih:" + hexHash, // parameter names are case-sensitive
		"magnet:?xt=urn:btmh:1220" + hexHash,
		"magnet:?xt=urn:btih:" + hexHash[:39],
		"magnet:?xt=urn:btih:" + hexHash + "0",
		"magnet:?xt=urn:btih:g12fe1c06bba254a9dc9f519b335aa7c1367a88a",
		"magnet:?xt=urn:btih:YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKE1", // '1' is not base32
		"magnet:?xt=urn:btih:" + hexHash + "&xt=urn:btih:" + "0000000000000000000000000000000000000000",
		"magnet:?xt=urn:btih:" + hexHash + "&x.pe=noport",
		"magnet:?xt=urn:btih:" + hexHash + "&x.pe=1.2.3.4:0",
		"magnet:?xt=urn:btih:" + hexHash + "&x.pe=1.2.3.4:70000",
		"magnet:?xt=urn:btih:" + hexHash + "&x.pe=:80",
		"magnet:?xt=urn:btih:" + hexHash + "&dn=%zz",
		"magnet:?xt=urn:btih:" + hexHash + ";dn=x",
	}
	for _, uri := range bad {
		if m, err := ParseMagnet(uri); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseMagnet(%q) = %+v, %v; want ErrInvalid", uri, m, err)
		} else {
			t.Logf("%v", err)
		}
	}
}

func TestTorrentMagnet(t *testing.T) {
	d := map[string]any{"info": singleInfo(), "announce": "http://a/",
		"announce-list": []any{[]string{"http://a/", "udp://b:1"}, []string{"udp://c:2"}}}
	tor, err := Parse([]byte(enc(d)))
	if err != nil {
		t.Fatal(err)
	}
	m := tor.Magnet()
	want := &Magnet{InfoHash: tor.InfoHash, Name: "file.bin", Trackers: []string{"http://a/", "udp://b:1", "udp://c:2"}}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("Magnet = %+v", m)
	}
	back, err := ParseMagnet(m.String())
	if err != nil || !reflect.DeepEqual(back, want) {
		t.Fatalf("ParseMagnet(%s) = %+v, %v", m, back, err)
	}
}
