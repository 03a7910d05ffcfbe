// Package fuzzcorpus reads and writes the committed seed corpora of fuzz
// targets that take one []byte or string argument (testdata/fuzz/<Target>/,
// in the "go test fuzz v1" format), for the tests that keep those seeds
// meaningful. It is test support: only _test.go files import it.
package fuzzcorpus

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Seed is one committed seed: its file name and its argument's bytes.
type Seed struct {
	Name string
	Data []byte
}

// Dir is where target's corpus lives, relative to the package under test.
func Dir(target string) string { return filepath.Join("testdata", "fuzz", target) }

// Read returns target's committed seeds in name order. It fails t when
// there are fewer than min or a file is not a corpus file of one []byte or
// string argument.
func Read(t testing.TB, target string, min int) []Seed {
	t.Helper()
	dir := Dir(target)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("seed corpus of %s: %v", target, err)
	}
	if len(entries) < min {
		t.Fatalf("seed corpus of %s: %d seeds, want at least %d", target, len(entries), min)
	}
	out := make([]Seed, 0, len(entries))
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		data, err := parse(string(b))
		if err != nil {
			t.Fatalf("%s/%s: %v", target, e.Name(), err)
		}
		out = append(out, Seed{Name: e.Name(), Data: data})
	}
	return out
}

// parse reads a corpus file of one []byte(...) or string(...) argument.
func parse(s string) ([]byte, error) {
	lines := strings.SplitN(s, "\n", 3)
	if len(lines) < 2 || lines[0] != "go test fuzz v1" {
		return nil, fmt.Errorf("not a corpus file (no \"go test fuzz v1\" line)")
	}
	lit := lines[1]
	open := strings.IndexByte(lit, '(')
	if open < 0 || !strings.HasSuffix(lit, ")") {
		return nil, fmt.Errorf("argument %q: want []byte(...) or string(...)", lit)
	}
	val, err := strconv.Unquote(lit[open+1 : len(lit)-1])
	if err != nil {
		return nil, fmt.Errorf("argument %q: %w", lit, err)
	}
	return []byte(val), nil
}

// CheckBad checks the convention of our corpora: a seed named bad-* is
// refused by decode, every other seed accepted.
func CheckBad(t testing.TB, target string, min int, decode func([]byte) error) {
	t.Helper()
	for _, s := range Read(t, target, min) {
		err := decode(s.Data)
		if bad := strings.HasPrefix(s.Name, "bad-"); bad != (err != nil) {
			t.Errorf("%s/%s: err = %v", target, s.Name, err)
		}
	}
}

// Write stores data as target's seed name, for a test that regenerates
// its corpus.
func Write(t testing.TB, target, name string, data []byte) {
	t.Helper()
	dir := Dir(target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(data)) + ")\n"
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
