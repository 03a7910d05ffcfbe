package mse

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/FuzzAccept's generated seeds")

// seedRand is the deterministic randomness of the fuzzed responder (and
// of the seeds' initiators), so that a seed reaches past the key
// exchange.
func seedRand(seed byte) io.Reader { return rand.NewChaCha8([32]byte{seed}) }

// fuzzResponder is the responder FuzzAccept drives: Yb is fixed by
// seedRand(1), no pads.
func fuzzResponder() responder {
	return responder{skeys: oneKey, allow: RC4 | Plaintext, padB: noPad, padD: noPad, rnd: seedRand(1)}
}

// acceptBytes runs the fuzzed responder on data as the initiator's stream.
func acceptBytes(data []byte) (result, error) {
	rw := struct {
		io.Reader
		io.Writer
	}{bytes.NewReader(data), io.Discard}
	return fuzzResponder().run(rw)
}

// FuzzAccept: the responder's decoder never panics, and what it accepts
// is within the bounds.
func FuzzAccept(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := acceptBytes(data)
		if err != nil {
			return
		}
		if len(r.ia) > MaxInitialPayload || (r.method != RC4 && r.method != Plaintext) || r.skey != testSKey {
			t.Fatalf("accepted out of bounds: %d-byte IA, method %v", len(r.ia), r.method)
		}
	})
}

type seed struct {
	name string
	data []byte
}

// initiatorBytes is what an initiator writes to the fuzzed responder
// (whose key it reads) up to waiting for the reply.
func initiatorBytes(in initiator) []byte {
	kp, _ := newKeyPair(seedRand(1))
	var out bytes.Buffer
	rw := struct {
		io.Reader
		io.Writer
	}{bytes.NewReader(kp.pub[:]), &out}
	in.rnd = seedRand(2)
	in.run(rw) // ends at EOF waiting for the reply
	return out.Bytes()
}

// seeds are the generated corpus: "ok-*" accepted, "bad-*" refused.
func seeds(tb testing.TB) []seed {
	hs := append([]byte{19}, "BitTorrent protocol"...)
	hs = append(append(hs, make([]byte, 8)...), testSKey[:]...)
	hs = append(hs, "-FL0001-abcdefghijkl"...)
	ok := func(provide Method, ia []byte, pad int) []byte {
		return initiatorBytes(initiator{skey: testSKey, provide: provide, ia: ia, padA: fixedPad(pad), padC: fixedPad(pad)})
	}
	badVC := ok(RC4, nil, 0)
	badVC[keyLen+40] ^= 1
	return []seed{
		{"ok-rc4-ia", ok(RC4, hs, 0)},
		{"ok-both-noia", ok(RC4|Plaintext, nil, 0)},
		{"ok-plain-pad512", ok(Plaintext, hs, 512)},
		{"bad-unknown-skey", initiatorBytes(initiator{skey: [20]byte{9}, provide: RC4, padA: noPad, padC: noPad})},
		{"bad-vc", badVC},
		{"bad-no-method", ok(0x10, nil, 0)},
		{"bad-garbage", bytes.Repeat([]byte{0xAA}, 700)},
		{"bad-short", bytes.Repeat([]byte{0x42}, 50)},
		{"bad-plaintext-bt", append(hs, make([]byte, 100)...)},
	}
}

// TestSeedCorpus keeps the committed seeds meaningful: testdata's
// FuzzAccept seeds named "ok-*" must be accepted, "bad-*" refused. With
// -update-corpus it first rewrites the generated seeds.
func TestSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzAccept")
	if *updateCorpus {
		os.MkdirAll(dir, 0o755)
		for _, s := range seeds(t) {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(s.data)))
			if err := os.WriteFile(filepath.Join(dir, s.name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 {
		t.Fatal("no seeds")
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitN(string(b), "\n", 3)
		if len(lines) < 2 || lines[0] != "go test fuzz v1" {
			t.Fatalf("%s: not a corpus file", e.Name())
		}
		lit := lines[1]
		lit = lit[strings.IndexByte(lit, '(')+1 : len(lit)-1]
		val, err := strconv.Unquote(lit)
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		_, err = acceptBytes([]byte(val))
		if bad := strings.HasPrefix(e.Name(), "bad-"); bad != (err != nil) {
			t.Errorf("%s: err = %v", e.Name(), err)
		}
		if strings.HasPrefix(e.Name(), "bad-no-method") && !errors.Is(err, ErrNoMethod) {
			t.Errorf("%s: err = %v, want ErrNoMethod", e.Name(), err)
		}
	}
}
