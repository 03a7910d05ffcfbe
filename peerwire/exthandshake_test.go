package peerwire

import (
	"bytes"
	"errors"
	"testing"
)

func TestExtHandshakeRoundTrip(t *testing.T) {
	for _, h := range []ExtHandshake{
		{},
		{M: map[string]int{"ut_metadata": 3, "ut_pex": 1, "lt_donthave": 0}, V: "Flotilla 0.1", P: 6881, Reqq: 500,
			MetadataSize: 31337, YourIP: []byte{127, 0, 0, 1}, UploadOnly: true},
		{YourIP: bytes.Repeat([]byte{1}, 16)},
	} {
		enc := h.Encode()
		got, err := ParseExtHandshake(enc)
		if err != nil {
			t.Fatalf("%s: %v", enc, err)
		}
		if len(h.M) == 0 {
			h.M = nil
		}
		if got.V != h.V || got.P != h.P || got.Reqq != h.Reqq || got.MetadataSize != h.MetadataSize ||
			!bytes.Equal(got.YourIP, h.YourIP) || got.UploadOnly != h.UploadOnly || len(got.M) != len(h.M) {
			t.Fatalf("got %+v, want %+v", got, h)
		}
		for k, v := range h.M {
			if got.M[k] != v {
				t.Fatalf("M[%q] = %d, want %d", k, got.M[k], v)
			}
		}
		if !bytes.Equal(got.Encode(), enc) {
			t.Fatalf("re-encode differs: %s vs %s", got.Encode(), enc)
		}
	}
	want := "d1:md11:ut_metadatai3e6:ut_pexi1ee13:metadata_sizei5e1:pi6881e4:reqqi250e11:upload_onlyi1e1:v3:abc6:yourip4:\x7f\x00\x00\x01e"
	h := ExtHandshake{M: map[string]int{"ut_pex": 1, "ut_metadata": 3}, MetadataSize: 5, P: 6881, Reqq: 250,
		UploadOnly: true, V: "abc", YourIP: []byte{127, 0, 0, 1}}
	if got := string(h.Encode()); got != want {
		t.Fatalf("Encode = %q, want %q", got, want)
	}
}

func TestExtHandshakeRealClients(t *testing.T) {
	// Shapes sent by libtorrent/qBittorrent, Transmission and aria2, with keys
	// we do not know (e, complete_ago, ipv4, ipv6) and nested values.
	for _, in := range []string{
		"d12:complete_agoi-1e1:ei0e4:ipv416:\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x001:md11:lt_donthavei7e10:share_modei8e11:upload_onlyi3e12:ut_holepunchi4e11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei5987e4:reqqi500e11:upload_onlyi0e1:v17:qBittorrent/4.5.06:yourip4:\x7f\x00\x00\x01e",
		"d1:ei1e4:ipv416:\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x101:md6:ut_pexi1e11:ut_metadatai3e12:ut_holepunchi4ee13:metadata_sizei1234e1:pi51413e4:reqqi512e1:v17:Transmission 3.00e",
		"d1:md11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei1000e1:v12:aria2/1.37.0e",
		"d1:xld1:ali1ei2eeee1:md11:ut_metadatai2eee",
	} {
		h, err := ParseExtHandshake([]byte(in))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if h.M["ut_metadata"] == 0 {
			t.Fatalf("%q: no ut_metadata in %+v", in, h)
		}
	}
}

func TestExtHandshakeGarbage(t *testing.T) {
	for _, in := range []string{
		"", "d", "e", "de1", "le", "i0e", "3:abc", "d1:m", "d1:md", "d1:mde", "d1:pi", "d1:pi1", "d1:pi01ee",
		"d1:pi-0ee", "d1:pie", "d1:pi1xe", "d1:v99:abce", "d1:v-1:ae", "d01:pi1ee", "d1:p", "dxe",
		"d1:vi1e1:x" + "lllllllllllllllllllllllllllllllllllllllllllllllll" + "e",
		"d1:xl" + string(bytes.Repeat([]byte("l"), 10000)) + "e",
		"d1:pi99999999999999999999999ee",
		"d3:abc", "d1:md1:ai1e", "d1:md1:ai1ee", "d1:md1:ai1eee trailing", "d1:q1:ae\x00",
		"d1:v999999999999999999999:ae",
	} {
		if _, err := ParseExtHandshake([]byte(in)); !errors.Is(err, ErrBadExtHandshake) || !errors.Is(err, ErrProtocol) {
			t.Errorf("%q: err = %v", in, err)
		}
	}
}

func TestExtHandshakeIgnoresBadValues(t *testing.T) {
	h, err := ParseExtHandshake([]byte("d1:md1:ai300e1:bi-1e0:i1e1:ci2e1:dli1eee1:pi70000e4:reqqi-5e1:vi3e6:yourip3:abce"))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.M) != 1 || h.M["c"] != 2 || h.P != 0 || h.Reqq != 0 || h.V != "" || h.YourIP != nil {
		t.Fatalf("got %+v", h)
	}
}
