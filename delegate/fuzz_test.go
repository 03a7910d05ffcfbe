package delegate

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// hostileBodies are msgpack bodies that try to make a decoder allocate,
// recurse or misread: seeds for FuzzDecode.
func hostileBodies() map[string][]byte {
	return map[string][]byte{
		"array32":    {0x81, 0xa6, 'p', 'i', 'e', 'c', 'e', 's', 0xdd, 0xff, 0xff, 0xff, 0xff},
		"map32":      {0xdf, 0x7f, 0xff, 0xff, 0xff},
		"str32":      {0x81, 0xa3, 'j', 'o', 'b', 0xdb, 0x7f, 0xff, 0xff, 0xff},
		"deep":       bytes.Repeat([]byte{0x91}, 40),
		"tiers":      bombJob(4 << 10)[5:],
		"nil":        {0xc0},
		"ext":        {0x81, 0xa3, 'j', 'o', 'b', 0xc7, 0x01, 0x05, 0x00},
		"float-rate": {0x81, 0xa9, 'd', 'o', 'w', 'n', '_', 'r', 'a', 't', 'e', 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1},
	}
}

// FuzzDecode decodes a body as a message of any type: it never panics,
// fails only with ErrProtocol, and what it accepts re-encodes to a frame
// its receiver accepts and decodes to the same encoding.
func FuzzDecode(f *testing.F) {
	for typ, v := range sampleMessages() {
		fr, err := encodeFrame(typ, v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(byte(typ), fr[5:])
	}
	for _, b := range hostileBodies() {
		for _, typ := range []MsgType{MsgJob, MsgAssign, MsgAddPeers, MsgPeers, MsgStatus, MsgHello} {
			f.Add(byte(typ), b)
		}
	}
	f.Fuzz(func(t *testing.T, typ byte, body []byte) {
		v, err := decodeMessage(MsgType(typ), body)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("decode error not ErrProtocol: %v", err)
			}
			return
		}
		again, err := encodeFrame(MsgType(typ), v)
		if err != nil {
			t.Fatalf("re-encode %v: %v", MsgType(typ), err)
		}
		typ2, body2, err := readFrame(bytes.NewReader(again), anyCap)
		if err != nil || typ2 != MsgType(typ) {
			t.Fatalf("re-read: %v", err)
		}
		v2, err := decodeMessage(typ2, body2)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if again2, err := encodeFrame(typ2, v2); err != nil || !bytes.Equal(again, again2) {
			t.Fatalf("decoded value does not round-trip: %+v vs %+v (%v)", v, v2, err)
		}
	})
}

// seedCorpus is the committed seed corpus: file path under testdata/fuzz
// to content. It holds one frame (FuzzReadFrame) and one body (FuzzDecode)
// of every message type, and the hostile bodies for every type that
// carries a container.
func seedCorpus(t *testing.T) map[string]string {
	out := map[string]string{}
	for typ, v := range sampleMessages() {
		fr, err := encodeFrame(typ, v)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Join("FuzzReadFrame", "seed-"+typ.String())] = fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", fr)
		out[filepath.Join("FuzzDecode", "seed-"+typ.String())] = fmt.Sprintf("go test fuzz v1\nbyte(%q)\n[]byte(%q)\n", byte(typ), fr[5:])
	}
	for name, b := range hostileBodies() {
		for _, typ := range []MsgType{MsgJob, MsgAssign, MsgAddPeers, MsgPeers, MsgStatus, MsgHello} {
			out[filepath.Join("FuzzDecode", "hostile-"+name+"-"+typ.String())] = fmt.Sprintf("go test fuzz v1\nbyte(%q)\n[]byte(%q)\n", byte(typ), b)
		}
		out[filepath.Join("FuzzReadFrame", "hostile-"+name)] = fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", rawFrame(MsgStatus, b))
	}
	return out
}

// TestSeedCorpus checks that the committed seed corpus under
// testdata/fuzz matches the messages of this version (so that a changed
// message is fuzzed from its new form); FLOTILLA_GEN_CORPUS=1 rewrites it.
func TestSeedCorpus(t *testing.T) {
	gen := os.Getenv("FLOTILLA_GEN_CORPUS") != ""
	want := seedCorpus(t)
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		path := filepath.Join("testdata", "fuzz", name)
		if gen {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want[name]), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want[name] {
			t.Errorf("seed corpus file %s is missing or stale (%v); regenerate it with FLOTILLA_GEN_CORPUS=1 go test -run TestSeedCorpus ./delegate/", path, err)
		}
	}
}
