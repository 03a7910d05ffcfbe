package bencode

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	jackpal "github.com/jackpal/bencode-go"

	"flotilla/internal/fuzzcorpus"
)

// The seed corpus lives in testdata/fuzz/FuzzDecode/: seeds named "bad-*"
// must be rejected by the strict reader, all others accepted.
// Run for example: go test -run '^$' -fuzz '^FuzzDecode$' -fuzztime 60s ./internal/bencode

// encode is the canonical bencoding of v (keys sorted), for the round trip.
func encode(dst []byte, v Value) []byte {
	switch v.Kind {
	case KindInt:
		dst = append(dst, 'i')
		dst = strconv.AppendInt(dst, v.Int, 10)
		return append(dst, 'e')
	case KindString:
		dst = strconv.AppendInt(dst, int64(len(v.Str)), 10)
		dst = append(dst, ':')
		return append(dst, v.Str...)
	case KindList:
		dst = append(dst, 'l')
		for _, e := range v.List {
			dst = encode(dst, e)
		}
		return append(dst, 'e')
	}
	dst = append(dst, 'd')
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range v.Dict {
			if !yield(k) {
				return
			}
		}
	}) {
		dst = encode(dst, Value{Kind: KindString, Str: []byte(k)})
		dst = encode(dst, v.Dict[k])
	}
	return append(dst, 'e')
}

// FuzzDecode: no panic on any input; errors are SyntaxErrors inside the
// input; Skip and Value agree; what the strict reader accepts, bencode-go
// decodes, KeepFirst accepts too, and the canonical re-encoding has the
// same length and decodes to the same value.
func FuzzDecode(f *testing.F) {
	f.Add([]byte("d8:announce3:abc4:infod6:lengthi5e4:name1:xee"))
	f.Fuzz(func(t *testing.T, data []byte) {
		strict := Options{MaxDepth: 8, Kind: errKind}
		v, err := Decode(data, strict)
		d := NewDecoder(data, strict)
		skipErr := d.Skip()
		if skipErr == nil {
			skipErr = d.Finish()
		}
		if (err == nil) != (skipErr == nil) {
			t.Fatalf("Value says %v, Skip says %v", err, skipErr)
		}
		lenient, lerr := Decode(data, Options{MaxDepth: 8, Duplicate: KeepFirst})
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || !errors.Is(err, ErrSyntax) || !errors.Is(err, errKind) || se.Offset < 0 || se.Offset > len(data) {
				t.Fatalf("error %v: want a SyntaxError inside the input", err)
			}
			if lerr == nil && !strings.Contains(se.Msg, "duplicate dictionary key") {
				t.Fatalf("KeepFirst accepts what strict rejects for another reason: %v", err)
			}
			if lerr == nil {
				checkRoundTrip(t, lenient, len(data), true)
			}
			return
		}
		if lerr != nil || !reflect.DeepEqual(v, lenient) {
			t.Fatalf("KeepFirst differs on a strictly valid input: %v", lerr)
		}
		if _, err := jackpal.Decode(bytes.NewReader(data)); err != nil {
			t.Fatalf("accepted what bencode-go rejects: %v", err)
		}
		checkRoundTrip(t, v, len(data), false)
	})
}

func checkRoundTrip(t *testing.T, v Value, n int, shorter bool) {
	t.Helper()
	enc := encode(nil, v)
	if len(enc) > n || (!shorter && len(enc) != n) {
		t.Fatalf("re-encoding is %d bytes, input %d", len(enc), n)
	}
	v2, err := Decode(enc, Options{MaxDepth: 8})
	if err != nil {
		t.Fatalf("re-encoding %q does not decode: %v", enc, err)
	}
	if !reflect.DeepEqual(v, v2) {
		t.Fatalf("round trip changed %+v to %+v", v, v2)
	}
}

// TestSeedCorpus keeps the committed seeds meaningful.
func TestSeedCorpus(t *testing.T) {
	fuzzcorpus.CheckBad(t, "FuzzDecode", 1, func(b []byte) error {
		_, err := Decode(b, Options{MaxDepth: 8})
		return err
	})
}
