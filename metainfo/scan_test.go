package metainfo

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestScanRejectsMalformed(t *testing.T) {
	valid := enc(singleInfo())
	deep := strings.Repeat("l", MaxDepth+1) + strings.Repeat("e", MaxDepth+1)
	// tolerated: Parse accepts it with a warning (TestParseTolerates).
	cases := []struct {
		name, in  string
		tolerated bool
	}{
		{"empty", "", false},
		{"not a dict", "i1e", false},
		{"list at top", "le", false},
		{"leading zero int", "d1:ai01ee", false},
		{"negative zero", "d1:ai-0ee", false},
		{"minus only", "d1:ai-ee", false},
		{"empty int", "d1:aiee", false},
		{"plus sign", "d1:ai+1ee", false},
		{"int overflow", "d1:ai9223372036854775808ee", false},
		{"int underflow", "d1:ai-9223372036854775809ee", false},
		{"int junk", "d1:ai1xee", false},
		{"unterminated int", "d1:ai12", false},
		{"leading zero length", "d01:ai1ee", false},
		{"string past end", "d1:a5:abce", false},
		{"huge string length", "d1:a99999999999999999999:xe", false},
		{"unterminated length", "d1:a12", false},
		{"unterminated dict", "d1:ai1e", false},
		{"unterminated list", "d1:ali1ee", false},
		{"unterminated nested", "d1:ad1:bi1ee", false},
		{"key not string", "di1ei1ee", false},
		{"missing value", "d1:ae", false},
		{"trailing garbage", valid + "x", true},
		{"two documents", valid + valid, true},
		{"unknown type", "d1:ax1ee", false},
		{"duplicate key sorted", "d1:ai1e1:ai2ee", true},
		{"duplicate key unsorted", "d1:bi1e1:ai1e1:bi2ee", true},
		{"too deep", "d1:a" + deep + "e", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := scanDocument([]byte(c.in), false, "info")
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("scan(%q) = %v, want ErrMalformed", c.in, err)
			}
			_, err = scanDocument([]byte(c.in), true, "info")
			if c.tolerated != (err == nil) {
				t.Fatalf("lenient scan(%q) = %v, tolerated %v", c.in, err, c.tolerated)
			}
			if _, err := Parse([]byte(c.in)); !c.tolerated && !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse(%q) = %v, want ErrMalformed", c.in, err)
			}
			if _, err := ParseInfo([]byte(c.in)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseInfo(%q) = %v, want ErrMalformed", c.in, err)
			}
		})
	}
}

func TestScanAcceptsLegalOddities(t *testing.T) {
	ok := []string{
		"de",
		"d1:ai0ee",
		"d1:ai-9223372036854775808ee",
		"d1:ai9223372036854775807ee",
		"d0:0:e",               // empty key and value
		"d1:bi1e1:ai2e1:ci3ee", // unsorted keys (accepted, documented)
		"d1:a" + strings.Repeat("l", MaxDepth-1) + strings.Repeat("e", MaxDepth-1) + "e",
	}
	for _, in := range ok {
		if _, err := scanDocument([]byte(in), false, "info"); err != nil {
			t.Errorf("scan(%q): %v", in, err)
		}
	}
}

func TestScanFindsInfoSpan(t *testing.T) {
	in := "d1:ad4:infoi1ee4:infod1:xi1ee1:zi1ee"
	doc, err := scanDocument([]byte(in), false, "info")
	sp, found := doc.keys["info"]
	if err != nil || !found {
		t.Fatalf("scan: found=%v err=%v", found, err)
	}
	if got := in[sp.start:sp.end]; got != "d1:xi1ee" {
		t.Fatalf("info span = %q, want the top-level one %q", got, "d1:xi1ee")
	}
}

// TestScanNestedUnsortedIsLinear guards against re-scanning nested
// dictionaries recursively when checking out-of-order keys for duplicates
// (which would be exponential in the depth).
func TestScanNestedUnsortedIsLinear(t *testing.T) {
	in := "i0e"
	for range MaxDepth - 1 {
		in = "d1:b" + in + "1:ai0ee" // keys out of order at every level
	}
	start := time.Now()
	if _, err := scanDocument([]byte(in), false); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("scan of %d bytes took %v", len(in), d)
	}
}
