package dht

import (
	"errors"
	"os"
	"strings"
	"testing"

	"flotilla/internal/bencode"
	"flotilla/internal/fuzzcorpus"
)

// The seed corpus lives in testdata/fuzz/FuzzDecodeMsg/: seeds named
// "bad-*" must be rejected, all others accepted.
// Run: go test -run '^$' -fuzz '^FuzzDecodeMsg$' -fuzztime 60s ./dht

// FuzzDecodeMsg: no panic on any input; every error wraps ErrMalformed;
// an accepted message re-encodes (as the node would answer it) to
// something that decodes again.
func FuzzDecodeMsg(f *testing.F) {
	f.Add([]byte("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeMsg(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		r := newDict()
		r.id("id", m.ID)
		r.str("nodes", compactNodes(m.Nodes, 4))
		r.str("nodes6", compactNodes(m.Nodes, 16))
		r.str("token", m.Token)
		r.raw("values", valuesList(m.Values))
		back, err := decodeMsg(appendResponse(nil, m.T, r.done()))
		if err != nil {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
		if back.ID != m.ID || len(back.Values) != len(m.Values) || len(back.Nodes) != len(m.Nodes) {
			t.Fatalf("round trip changed %+v to %+v", m, back)
		}
	})
}

// TestSeedCorpus keeps the committed seeds meaningful.
func TestSeedCorpus(t *testing.T) {
	fuzzcorpus.CheckBad(t, "FuzzDecodeMsg", 10, func(b []byte) error {
		_, err := decodeMsg(b)
		return err
	})
}

// TestEncodeDecode: what we send decodes to what we meant.
func TestEncodeDecode(t *testing.T) {
	id, ih := RandomID(), RandomID()
	d := newDict()
	d.id("id", id)
	d.int("implied_port", 1)
	d.id("info_hash", ih)
	d.int("port", 6881)
	d.str("token", []byte("tok"))
	pkt := appendQuery(nil, []byte("ab"), "announce_peer", d.done())
	if _, err := bencode.Decode(pkt, bencode.Options{}); err != nil {
		t.Fatalf("not strict bencode: %v", err)
	}
	m, err := decodeMsg(pkt)
	if err != nil || m.Y != 'q' || m.Q != "announce_peer" || m.ID != id || m.InfoHash != ih ||
		m.Port != 6881 || !m.ImpliedPort || string(m.Token) != "tok" || string(m.T) != "ab" {
		t.Fatalf("%+v %v", m, err)
	}
	e, err := decodeMsg(appendError(nil, []byte("ab"), errProtocol, "bad token"))
	if err != nil || e.ErrCode != errProtocol || e.ErrMsg != "bad token" {
		t.Fatalf("%+v %v", e, err)
	}
}

// TestWriteSeedCorpus regenerates the corpus with FLOTILLA_GEN_CORPUS=1.
func TestWriteSeedCorpus(t *testing.T) {
	if os.Getenv("FLOTILLA_GEN_CORPUS") == "" {
		return
	}
	id := ID([]byte("abcdefghij0123456789"))
	q := func(method string, args ...string) string {
		d := newDict()
		d.id("id", id)
		for i := 0; i+1 < len(args); i += 2 {
			d.str(args[i], []byte(args[i+1]))
		}
		return string(appendQuery(nil, []byte("aa"), method, d.done()))
	}
	node4 := string(id[:]) + "\x7f\x00\x00\x01\x1a\xe1"
	node6 := string(id[:]) + strings.Repeat("\x00", 15) + "\x01\x1a\xe1"
	resp := func(body string) string { return "d1:rd" + body + "e1:t2:aa1:y1:re" }
	seeds := map[string]string{
		"ping":              q("ping"),
		"find-node":         q("find_node", "target", string(id[:])),
		"get-peers":         q("get_peers", "info_hash", string(id[:])),
		"announce":          "d1:ad2:id20:" + string(id[:]) + "12:implied_porti1e9:info_hash20:" + string(id[:]) + "4:porti6881e5:token8:abcdefghe1:q13:announce_peer1:t2:aa1:y1:qe",
		"want-n4-n6":        "d1:ad2:id20:" + string(id[:]) + "6:target20:" + string(id[:]) + "4:wantl2:n42:n6ee1:q9:find_node1:t2:aa1:y1:qe",
		"resp-nodes":        resp("2:id20:" + string(id[:]) + "5:nodes26:" + node4),
		"resp-nodes6":       resp("2:id20:" + string(id[:]) + "6:nodes638:" + node6),
		"resp-values":       resp("2:id20:" + string(id[:]) + "5:token2:tk6:valuesl6:\x7f\x00\x00\x01\x1a\xe118:" + strings.Repeat("\x00", 15) + "\x01\x1a\xe1e"),
		"error":             "d1:eli203e9:bad tokene1:t2:aa1:y1:ee",
		"unsorted-keys":     "d1:t2:aa1:y1:q1:q4:ping1:ad2:id20:" + string(id[:]) + "ee",
		"bad-not-dict":      "l1:ae",
		"bad-no-t":          "d1:y1:qe",
		"bad-short-id":      "d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe",
		"bad-nodes-len":     resp("2:id20:" + string(id[:]) + "5:nodes25:" + node4[:25]),
		"bad-port":          "d1:ad2:id20:" + string(id[:]) + "4:porti70000ee1:q13:announce_peer1:t2:aa1:y1:qe",
		"bad-truncated":     q("ping")[:30],
		"bad-type":          "d1:t2:aa1:y1:xe",
		"bad-error-shape":   "d1:e3:abc1:t2:aa1:y1:ee",
		"bad-trailing-junk": q("ping") + "x",
		"bad-deep":          "d1:ad2:idllllllllee" + "eeeeeee1:q4:ping1:t2:aa1:y1:qe",
	}
	for name, s := range seeds {
		fuzzcorpus.Write(t, "FuzzDecodeMsg", name, []byte(s))
	}
}
