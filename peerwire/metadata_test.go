package peerwire

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"flotilla/internal/fuzzcorpus"
)

func TestMetadataMsgRoundTrip(t *testing.T) {
	data := bytes.Repeat([]byte{7}, 100)
	for _, m := range []MetadataMsg{
		{Type: MetadataRequest, Piece: 3},
		{Type: MetadataReject, Piece: 0},
		{Type: MetadataData, Piece: 1, TotalSize: MetadataPieceSize + 100, Data: data},
	} {
		enc := m.AppendTo(nil)
		got, err := ParseMetadataMsg(enc)
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		if got.Type != m.Type || got.Piece != m.Piece || got.TotalSize != m.TotalSize || !bytes.Equal(got.Data, m.Data) {
			t.Fatalf("round trip %+v -> %q -> %+v", m, enc, got)
		}
	}
	// BEP 9's own example, keys in any order and unknown ones skipped.
	m, err := ParseMetadataMsg([]byte("d5:piecei0e1:xi5e8:msg_typei1e10:total_sizei3eeabc"))
	if err != nil || string(m.Data) != "abc" || m.TotalSize != 3 {
		t.Fatalf("got %+v, %v", m, err)
	}
}

func TestMetadataMsgRejects(t *testing.T) {
	for _, in := range []string{
		"",
		"de",
		"d8:msg_typei3e5:piecei0ee",
		"d8:msg_typei0e5:piecei-1ee",
		"d8:msg_typei0e5:piecei0eexx", // trailing bytes after a request
		"d8:msg_typei1e5:piecei0ee",   // data without total_size
		"d8:msg_typei1e5:piecei1e10:total_sizei16384ee",     // piece past the size
		"d8:msg_typei1e5:piecei0e10:total_sizei999999999ee", // absurd size
		"d8:msg_typei1e5:piecei0e10:total_sizei3ee" + strings.Repeat("x", MetadataPieceSize+1),
		"d8:msg_typei01e5:piecei0ee", // non-canonical integer
	} {
		if m, err := ParseMetadataMsg([]byte(in)); !errors.Is(err, ErrBadMetadataMsg) || !errors.Is(err, ErrProtocol) {
			t.Errorf("ParseMetadataMsg(%.60q) = %+v, %v; want ErrBadMetadataMsg", in, m, err)
		}
	}
}

func FuzzMetadataMsg(f *testing.F) {
	f.Add([]byte("d8:msg_typei0e5:piecei0ee"))
	f.Add([]byte("d8:msg_typei1e5:piecei0e10:total_sizei3eeabc"))
	f.Add([]byte("d8:msg_typei2e5:piecei1ee"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMetadataMsg(data)
		if err != nil {
			if !errors.Is(err, ErrBadMetadataMsg) {
				t.Fatalf("unexpected error type: %v", err)
			}
			return
		}
		if m.Type == MetadataData && (len(m.Data) > MetadataPieceSize || m.Piece >= MetadataPieces(m.TotalSize)) {
			t.Fatalf("accepted out-of-range %+v", m)
		}
		enc := m.AppendTo(nil)
		m2, err := ParseMetadataMsg(enc)
		if err != nil || m2.Type != m.Type || m2.Piece != m.Piece || m2.TotalSize != m.TotalSize || !bytes.Equal(m2.Data, m.Data) {
			t.Fatalf("re-encoding %q gives %+v, %v", enc, m2, err)
		}
	})
}

// TestMetadataSeedCorpus keeps the committed seeds meaningful: a seed named
// bad-* must be refused, every other one accepted.
func TestMetadataSeedCorpus(t *testing.T) {
	fuzzcorpus.CheckBad(t, "FuzzMetadataMsg", 1, func(b []byte) error {
		_, err := ParseMetadataMsg(b)
		return err
	})
}
