package wire

import (
	"errors"
	"strings"
	"testing"
)

func TestBencodeStrictness(t *testing.T) {
	good := []string{"i0e", "i-5e", "0:", "3:abc", "le", "de", "d1:ai1e1:bl1:cee", "d1:bi1e1:ai2ee"}
	for _, s := range good {
		if _, err := decodeBencode([]byte(s)); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	bad := []string{"", "i-0e", "i01e", "ie", "i1", "i99999999999999999999e", "01:a", "5:abc", "l", "d", "di1ei2ee",
		"3:abcx", "x", "1:", "99999999999:x", strings.Repeat("l", 40) + strings.Repeat("e", 40)}
	for _, s := range bad {
		if _, err := decodeBencode([]byte(s)); !errors.Is(err, ErrBencode) {
			t.Errorf("%q: want ErrBencode, got %v", s, err)
		}
	}
}

func TestDecodeHTTPAnnounceTypes(t *testing.T) {
	for _, s := range []string{"i1e", "d8:interval3:abce", "d5:peersi1ee", "d6:peers64:abcde", "d5:peers5:abcdee",
		"d14:failure reasoni1ee"} {
		if _, err := DecodeHTTPAnnounce([]byte(s)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: want ErrMalformed, got %v", s, err)
		}
	}
	r, err := DecodeHTTPAnnounce([]byte("d8:intervali-5e8:completei-1e5:peersld2:ip9:host.name4:porti1eed2:ip3:::14:porti70000eed2:ip3:::14:porti2eeee"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Interval != 0 || r.Seeders != -1 || r.Leechers != -1 || len(r.Peers) != 1 || r.Peers[0].Addr.String() != "[::1]:2" {
		t.Fatalf("%+v: negative values are unknown, host names and bad ports skipped", r)
	}
	r, err = DecodeHTTPAnnounce([]byte("d8:intervali99999999999ee"))
	if err != nil || r.Interval != MaxInterval {
		t.Fatalf("%+v %v: absurd intervals are capped", r, err)
	}
}

func TestUDPRepliesTooShort(t *testing.T) {
	if _, err := DecodeConnectReply(AppendConnectReply(nil, 1, 2)[:15]); !errors.Is(err, ErrMalformed) {
		t.Error("short connect reply accepted")
	}
	full := AppendAnnounceReply(nil, 1, &AnnounceResponse{Peers: []Peer{{}}}, false)
	if _, err := DecodeAnnounceReply(full[:19], false); !errors.Is(err, ErrMalformed) {
		t.Error("short announce reply accepted")
	}
	if _, err := DecodeAnnounceReply(full[:23], false); !errors.Is(err, ErrMalformed) {
		t.Error("partial peer entry accepted")
	}
	if _, err := DecodeScrapeReply(AppendScrapeReply(nil, 1, make([]ScrapeStats, 2)), 3); !errors.Is(err, ErrMalformed) {
		t.Error("scrape reply with fewer entries than asked accepted")
	}
	if _, _, ok := ReplyHeader([]byte{0, 0, 0, 1, 0, 0, 0}); ok {
		t.Error("7-byte header accepted")
	}
}
