package mse

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"flotilla/internal/fuzzcorpus"
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
	if *updateCorpus {
		for _, s := range seeds(t) {
			fuzzcorpus.Write(t, "FuzzAccept", s.name, s.data)
		}
	}
	fuzzcorpus.CheckBad(t, "FuzzAccept", 1, func(b []byte) error {
		_, err := acceptBytes(b)
		return err
	})
	for _, s := range fuzzcorpus.Read(t, "FuzzAccept", 1) {
		if _, err := acceptBytes(s.Data); strings.HasPrefix(s.Name, "bad-no-method") && !errors.Is(err, ErrNoMethod) {
			t.Errorf("%s: err = %v, want ErrNoMethod", s.Name, err)
		}
	}
}
