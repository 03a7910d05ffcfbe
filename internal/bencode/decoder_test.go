package bencode

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

var errKind = errors.New("caller: bad input")

func TestDecodeAccepts(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("l", n) + strings.Repeat("e", n) }
	nested := func(n int) Value {
		v := Value{Kind: KindList}
		for range n - 1 {
			v = Value{Kind: KindList, List: []Value{v}}
		}
		return v
	}
	for _, c := range []struct {
		name, in string
		opt      Options
		want     Value
	}{
		{"zero", "i0e", Options{}, Value{Kind: KindInt}},
		{"negative", "i-42e", Options{}, Value{Kind: KindInt, Int: -42}},
		{"max int64", "i9223372036854775807e", Options{}, Value{Kind: KindInt, Int: 1<<63 - 1}},
		{"min int64", "i-9223372036854775808e", Options{}, Value{Kind: KindInt, Int: -1 << 63}},
		{"empty string", "0:", Options{}, Value{Kind: KindString, Str: []byte{}}},
		{"string", "3:a:c", Options{}, Value{Kind: KindString, Str: []byte("a:c")}},
		{"empty list", "le", Options{}, Value{Kind: KindList}},
		{"list", "li1e1:xe", Options{}, Value{Kind: KindList, List: []Value{{Kind: KindInt, Int: 1}, {Kind: KindString, Str: []byte("x")}}}},
		{"empty dict", "de", Options{}, Value{Kind: KindDict, Dict: map[string]Value{}}},
		{"empty key", "d0:0:e", Options{}, Value{Kind: KindDict, Dict: map[string]Value{"": {Kind: KindString, Str: []byte{}}}}},
		{"unsorted keys", "d1:bi1e1:ai2ee", Options{},
			Value{Kind: KindDict, Dict: map[string]Value{"a": {Kind: KindInt, Int: 2}, "b": {Kind: KindInt, Int: 1}}}},
		{"duplicate, first wins", "d1:ai1e1:bi2e1:ai3ee", Options{Duplicate: KeepFirst},
			Value{Kind: KindDict, Dict: map[string]Value{"a": {Kind: KindInt, Int: 1}, "b": {Kind: KindInt, Int: 2}}}},
		{"duplicate sorted, first wins", "d1:ai1e1:ai3ee", Options{Duplicate: KeepFirst},
			Value{Kind: KindDict, Dict: map[string]Value{"a": {Kind: KindInt, Int: 1}}}},
		{"default depth", deep(DefaultMaxDepth), Options{}, nested(DefaultMaxDepth)},
		{"own depth", deep(3), Options{MaxDepth: 3}, nested(3)},
		{"string at limit", "3:abc", Options{MaxStringLen: 3}, Value{Kind: KindString, Str: []byte("abc")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Decode([]byte(c.in), c.opt)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("Decode(%q) = %+v, want %+v", c.in, got, c.want)
			}
			d := NewDecoder([]byte(c.in), c.opt)
			if err := d.Skip(); err != nil || d.Rest() != 0 {
				t.Fatalf("Skip: %v, %d bytes left", err, d.Rest())
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	deep := strings.Repeat("l", DefaultMaxDepth+1) + strings.Repeat("e", DefaultMaxDepth+1)
	for _, c := range []struct {
		name, in string
		opt      Options
		offset   int
		msg      string
	}{
		{"empty", "", Options{}, 0, "empty input"},
		{"unknown type", "x", Options{}, 0, `unexpected byte 'x'`},
		{"leading zero int", "i01e", Options{}, 3, "integer with leading zero"},
		{"negative zero", "i-0e", Options{}, 3, "negative zero"},
		{"minus only", "i-e", Options{}, 2, "integer without digits"},
		{"empty int", "ie", Options{}, 1, "integer without digits"},
		{"plus sign", "i+1e", Options{}, 1, "integer without digits"},
		{"int overflow", "i9223372036854775808e", Options{}, 20, "integer overflows 64 bits"},
		{"int underflow", "i-9223372036854775809e", Options{}, 20, "integer overflows 64 bits"},
		{"huge int", "i99999999999999999999e", Options{}, 19, "integer overflows 64 bits"},
		{"int junk", "i1xe", Options{}, 2, `unexpected byte 'x' in integer`},
		{"unterminated int", "i12", Options{}, 3, "unterminated integer"},
		{"leading zero length", "01:a", Options{}, 2, "string length with leading zero"},
		{"string past end", "5:abc", Options{}, 2, "string length 5 past end of input"},
		{"huge string length", "99999999999999999999:x", Options{}, 1, "string length past end of input"},
		{"unterminated length", "1", Options{}, 1, "unterminated string length"},
		{"bad length", "1x", Options{}, 1, `unexpected byte 'x' in string length`},
		{"string over limit", "4:abcd", Options{MaxStringLen: 3}, 0, "string of 4 bytes is longer than 3"},
		{"unterminated list", "li1e", Options{}, 4, "unterminated list"},
		{"unterminated dict", "d1:ai1e", Options{}, 7, "unterminated dictionary"},
		{"unterminated nested", "d1:ad1:bi1ee", Options{}, 12, "unterminated dictionary"},
		{"key not string", "di1ei1ee", Options{}, 1, "dictionary key is not a string"},
		{"missing value", "d1:ae", Options{}, 4, `unexpected byte 'e'`},
		{"truncated value", "d1:a", Options{}, 4, "unexpected end of input"},
		{"duplicate sorted", "d1:ai1e1:ai2ee", Options{}, 7, `duplicate dictionary key "a"`},
		{"duplicate unsorted", "d1:bi1e1:ai1e1:bi2ee", Options{}, 13, `duplicate dictionary key "b"`},
		{"duplicate refused", "d1:ai1e1:ai2ee", Options{Duplicate: func(int, []byte) bool { return false }}, 7, `duplicate dictionary key "a"`},
		{"duplicate's value checked", "d1:ai1e1:ai01ee", Options{Duplicate: KeepFirst}, 13, "integer with leading zero"},
		{"duplicate nested", "d1:xd1:ai1e1:ai1eee", Options{}, 11, `duplicate dictionary key "a"`},
		{"too deep", deep, Options{}, DefaultMaxDepth, "nesting deeper than 64"},
		{"too deep for own limit", "llleee", Options{MaxDepth: 2}, 2, "nesting deeper than 2"},
		{"trailing garbage", "i1ex", Options{}, 3, "1 bytes of trailing garbage"},
		{"two values", "dede", Options{}, 2, "2 bytes of trailing garbage"},
		{"end where a value is due", "l", Options{}, 1, "unterminated list"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.opt.Kind = errKind
			_, err := Decode([]byte(c.in), c.opt)
			var se *SyntaxError
			if !errors.As(err, &se) || !errors.Is(err, ErrSyntax) || !errors.Is(err, errKind) {
				t.Fatalf("Decode(%q) = %v, want a SyntaxError wrapping ErrSyntax and the caller's kind", c.in, err)
			}
			if se.Offset != c.offset || se.Msg != c.msg {
				t.Fatalf("Decode(%q): offset %d %q, want %d %q", c.in, se.Offset, se.Msg, c.offset, c.msg)
			}
			if want := "caller: bad input: at offset "; !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("message %q does not start with %q", err, want)
			}
		})
	}
}

func TestErrorWithoutKind(t *testing.T) {
	_, err := Decode([]byte("i01e"), Options{})
	if got, want := err.Error(), "bencode: malformed: at offset 3: integer with leading zero"; got != want {
		t.Fatalf("error %q, want %q", got, want)
	}
}

func TestReadingMethodsCheckTheKind(t *testing.T) {
	for _, c := range []struct {
		name, in string
		read     func(*Decoder) error
		msg      string
	}{
		{"Int", "le", func(d *Decoder) error { _, err := d.Int(); return err }, "expected an integer"},
		{"Bytes", "le", func(d *Decoder) error { _, err := d.Bytes(); return err }, "expected a string"},
		{"List", "de", func(d *Decoder) error { return d.List(nil) }, "expected a list"},
		{"Dict", "le", func(d *Decoder) error { return d.Dict(nil) }, "top-level value is not a dictionary"},
		{"nested Dict", "li1ee", func(d *Decoder) error {
			return d.List(func() error { return d.Dict(nil) })
		}, "expected a dictionary"},
		{"Int at end", "", func(d *Decoder) error { _, err := d.Int(); return err }, "empty input"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var se *SyntaxError
			if err := c.read(NewDecoder([]byte(c.in), Options{})); !errors.As(err, &se) || se.Msg != c.msg {
				t.Fatalf("%s on %q: %v, want %q", c.name, c.in, err, c.msg)
			}
		})
	}
}

// TestDictSpans: a visitor that reads nothing has the value skipped, and
// Pos around Skip gives the exact span of a value (the info-hash's bytes).
func TestDictSpans(t *testing.T) {
	in := []byte("d1:ad4:infoi1ee4:infod1:xi1ee1:zi1ee")
	spans := map[string][2]int{}
	var order []string
	d := NewDecoder(in, Options{})
	err := d.Dict(func(key []byte) error {
		order = append(order, string(key))
		if string(key) == "z" {
			return nil // left to Dict
		}
		start := d.Pos()
		if err := d.Skip(); err != nil {
			return err
		}
		spans[string(key)] = [2]int{start, d.Pos()}
		return nil
	})
	if err != nil || d.Finish() != nil {
		t.Fatalf("Dict: %v, %d bytes left", err, d.Rest())
	}
	if s := spans["info"]; string(in[s[0]:s[1]]) != "d1:xi1ee" {
		t.Fatalf("info span %v = %q", s, in[s[0]:s[1]])
	}
	if !reflect.DeepEqual(order, []string{"a", "info", "z"}) {
		t.Fatalf("visited %q", order)
	}
}

func TestDuplicateSeesDepthAndKey(t *testing.T) {
	type dup struct {
		depth int
		key   string
	}
	var got []dup
	opt := Options{Duplicate: func(depth int, key []byte) bool {
		got = append(got, dup{depth, string(key)})
		return true
	}}
	v, err := Decode([]byte("d1:bi1e1:ai2e1:bi3e1:xld1:ci1e1:ci2eeee"), opt)
	if err != nil {
		t.Fatal(err)
	}
	if want := []dup{{1, "b"}, {3, "c"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Duplicate saw %v, want %v", got, want)
	}
	if v.Dict["b"].Int != 1 || v.Dict["x"].List[0].Dict["c"].Int != 1 {
		t.Fatalf("first occurrences should win: %+v", v)
	}
}

func TestVisitorErrorStops(t *testing.T) {
	stop := errors.New("stop")
	d := NewDecoder([]byte("d1:ai1e1:bi2ee"), Options{})
	n := 0
	if err := d.Dict(func([]byte) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("err %v after %d visits", err, n)
	}
	d = NewDecoder([]byte("li1ei2ee"), Options{})
	if err := d.List(func() error { return stop }); err != stop {
		t.Fatalf("List: %v", err)
	}
}

func TestBytesAliasClipped(t *testing.T) {
	in := []byte("3:abc1:x")
	d := NewDecoder(in, Options{})
	s, err := d.Bytes()
	if err != nil || cap(s) != 3 || &s[0] != &in[2] {
		t.Fatalf("%q cap %d err %v: want the input's bytes, capacity clipped", s, cap(s), err)
	}
	_ = append(s, 'Z')
	if !bytes.Equal(in, []byte("3:abc1:x")) {
		t.Fatal("appending to a string overwrote the input")
	}
}

// TestNoAllocation: validating allocates nothing for a dictionary in key
// order, and a huge declared length costs no more than a small one.
func TestNoAllocation(t *testing.T) {
	allocs := func(in string) float64 {
		b := []byte(in)
		return testing.AllocsPerRun(50, func() {
			d := Decoder{data: b, opt: Options{MaxDepth: DefaultMaxDepth}}
			_ = d.Skip()
		})
	}
	for _, in := range []string{"d1:ai1e1:bl1:x1:yd1:ci-3eee1:d0:e", "l" + strings.Repeat("i7e", 1000) + "e"} {
		if n := allocs(in); n != 0 {
			t.Errorf("Skip(%.20q…) allocates %v times", in, n)
		}
	}
	if huge, small := allocs("d1:a99999999999:xe"), allocs("d1:a9:xe"); huge != small {
		t.Errorf("a huge declared length allocates %v times, a small one %v", huge, small)
	}
}

// TestNestedUnsortedIsLinear guards against re-checking nested dictionaries
// recursively when looking for duplicates among keys out of order (which
// would be exponential in the depth).
func TestNestedUnsortedIsLinear(t *testing.T) {
	in := "i0e"
	for range DefaultMaxDepth - 1 {
		in = "d1:b" + in + "1:ai0ee" // keys out of order at every level
	}
	start := time.Now()
	if _, err := Decode([]byte(in), Options{}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("decoding %d bytes took %v", len(in), d)
	}
}
