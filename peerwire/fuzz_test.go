package peerwire

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"testing"
)

// knownReadError reports whether err is an error ReadMessage/ReadHandshake is
// documented to return.
func knownReadError(err error) bool {
	return errors.Is(err, ErrProtocol) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

var fuzzLimits = []Limits{
	{},         // magnet: nothing known
	testLimits, // 10 pieces, short last piece
	{NumPieces: 13, MaxBlock: 64, MaxMessage: 300}, // tight caps
}

func FuzzReadMessage(f *testing.F) {
	for _, m := range allMessages() {
		f.Add(AppendMessage(nil, m))
	}
	f.Add(raw(13, Request, u32s(0, 0, 0)...))
	f.Add(raw(0xFFFFFFFF, Piece))
	f.Add(raw(3, BitfieldMsg, 0xff, 0xC0))
	// One Reader per limit set, Reset for each input: a new Reader costs a
	// 64 KiB buffer, which made allocation most of every execution. The
	// fuzz function is never called concurrently within a process.
	readers := make([]*Reader, len(fuzzLimits))
	for i, lim := range fuzzLimits {
		readers[i] = NewReader(nil, lim)
	}
	src := new(bytes.Reader)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, r := range readers {
			src.Reset(data)
			r.Reset(src)
			var out []byte
			for {
				m, err := r.ReadMessage()
				if err != nil {
					if !knownReadError(err) {
						t.Fatalf("unexpected error type: %v", err)
					}
					if err == io.EOF && !bytes.Equal(out, data) {
						t.Fatalf("EOF but re-encoding %x != input %x", out, data)
					}
					break
				}
				out = AppendMessage(out, m)
				if !bytes.HasPrefix(data, out) {
					t.Fatalf("message %v re-encodes to different bytes", m)
				}
			}
		}
	})
}

func FuzzReadHandshake(f *testing.F) {
	f.Add(AppendHandshake(nil, testHandshake(DefaultReserved())))
	f.Add(AppendHandshake(nil, Handshake{}))
	f.Add([]byte("\x13BitTorrent protocol"))
	f.Add([]byte("\x13BitTorrent protocoL\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ReadHandshake(bytes.NewReader(data))
		if err != nil {
			if !knownReadError(err) {
				t.Fatalf("unexpected error type: %v", err)
			}
			if len(data) >= HandshakeLen && !errors.Is(err, ErrBadHandshake) {
				t.Fatalf("full-length input gave %v", err)
			}
			return
		}
		if !bytes.Equal(AppendHandshake(nil, h), data[:HandshakeLen]) {
			t.Fatal("handshake re-encodes to different bytes")
		}
		p, err := ParseHandshake(data[:HandshakeLen])
		if err != nil || p != h {
			t.Fatalf("ParseHandshake disagrees: %v", err)
		}
	})
}

func FuzzExtHandshake(f *testing.F) {
	f.Add([]byte("d1:md11:ut_metadatai3e6:ut_pexi1ee13:metadata_sizei5e1:pi6881e4:reqqi250e11:upload_onlyi1e1:v3:abc6:yourip4:\x7f\x00\x00\x01e"))
	f.Add([]byte("de"))
	f.Add([]byte("d1:xld1:ali1ei2eeee1:md11:ut_metadatai2eee"))
	f.Add([]byte("d1:md1:ai300e1:bi-1e0:i1e1:ci2e1:dli1eee1:pi70000e4:reqqi-5e1:vi3e6:yourip3:abce"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseExtHandshake(data)
		if err != nil {
			if !errors.Is(err, ErrBadExtHandshake) || !errors.Is(err, ErrProtocol) {
				t.Fatalf("unexpected error type: %v", err)
			}
			return
		}
		// Unknown keys are dropped, so the property is on the canonical
		// re-encoding: it parses to the same value and is stable.
		enc := h.Encode()
		h2, err := ParseExtHandshake(enc)
		if err != nil {
			t.Fatalf("re-encoding %q does not parse: %v", enc, err)
		}
		if !extEqual(h, h2) {
			t.Fatalf("round trip changed %+v to %+v", h, h2)
		}
		if enc2 := h2.Encode(); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable: %q vs %q", enc, enc2)
		}
	})
}

func extEqual(a, b ExtHandshake) bool {
	return a.V == b.V && a.P == b.P && a.Reqq == b.Reqq && a.MetadataSize == b.MetadataSize &&
		bytes.Equal(a.YourIP, b.YourIP) && a.UploadOnly == b.UploadOnly && maps.Equal(a.M, b.M)
}
