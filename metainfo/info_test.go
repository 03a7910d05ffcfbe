package metainfo

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestInfoValidationErrors(t *testing.T) {
	type mut func(d map[string]any)
	set := func(k string, v any) mut { return func(d map[string]any) { d[k] = v } }
	del := func(k string) mut { return func(d map[string]any) { delete(d, k) } }
	files := func(f ...any) mut { return set("files", f) }
	cases := []struct {
		name  string
		multi bool
		m     mut
	}{
		{"missing name", false, del("name")},
		{"name not string", false, set("name", 5)},
		{"name empty", false, set("name", "")},
		{"name dot", false, set("name", ".")},
		{"name dotdot", false, set("name", "..")},
		{"name slash", false, set("name", "a/b")},
		{"name absolute", false, set("name", "/etc/passwd")},
		{"name backslash", false, set("name", `..\x`)},
		{"name NUL", false, set("name", "a\x00b")},
		{"name too long", false, set("name", strings.Repeat("n", MaxComponentLen+1))},
		{"name.utf-8 unsafe", false, set("name.utf-8", "..")},
		{"name.utf-8 mistyped", false, set("name.utf-8", []string{"x"})},
		{"missing piece length", false, del("piece length")},
		{"piece length string", false, set("piece length", "32")},
		{"piece length zero", false, set("piece length", 0)},
		{"piece length negative", false, set("piece length", -32)},
		{"piece length absurd", false, set("piece length", MaxPieceLength+1)},
		{"missing pieces", false, del("pieces")},
		{"pieces not string", false, set("pieces", 1)},
		{"pieces empty", false, set("pieces", "")},
		{"pieces not multiple of 20", false, set("pieces", fakePieces(4)+"x")},
		{"too few pieces", false, set("pieces", fakePieces(3))},
		{"too many pieces", false, set("pieces", fakePieces(5))},
		{"private mistyped", false, set("private", "1")},
		{"private out of range", false, set("private", 2)},
		{"missing length and files", false, del("length")},
		{"length mistyped", false, set("length", "100")},
		{"negative length", false, set("length", -1)},
		{"zero length", false, set("length", 0)},
		{"length and files", true, set("length", 40)},
		{"files not list", true, set("files", "x")},
		{"files empty", true, files()},
		{"file not dict", true, files("x")},
		{"file missing length", true, files(map[string]any{"path": []string{"a"}})},
		{"file length mistyped", true, files(map[string]any{"length": "1", "path": []string{"a"}})},
		{"file negative length", true, files(fileEntry(50, "a"), fileEntry(-10, "b"))},
		{"file missing path", true, files(map[string]any{"length": 40})},
		{"file path not list", true, files(map[string]any{"length": 40, "path": "a"})},
		{"file path element not string", true, files(map[string]any{"length": 40, "path": []any{1}})},
		{"file path empty list", true, files(fileEntry(40))},
		{"file path empty component", true, files(fileEntry(40, "a", ""))},
		{"file path dot", true, files(fileEntry(40, ".", "a"))},
		{"file path dotdot", true, files(fileEntry(40, "..", "..", "etc", "passwd"))},
		{"file path absolute", true, files(fileEntry(40, "/etc/passwd"))},
		{"file path slash inside", true, files(fileEntry(40, "a/../../b"))},
		{"file path backslash", true, files(fileEntry(40, `..\..\b`))},
		{"file path NUL", true, files(fileEntry(40, "a\x00"))},
		{"file path.utf-8 unsafe", true, files(map[string]any{"length": 40, "path": []string{"a"}, "path.utf-8": []string{".."}})},
		{"file attr mistyped", true, files(map[string]any{"length": 40, "path": []string{"a"}, "attr": 1})},
		{"duplicate paths", true, files(fileEntry(20, "x", "a"), fileEntry(20, "x", "a"))},
		{"file is dir of later file", true, files(fileEntry(20, "x"), fileEntry(20, "x", "a"))},
		{"file is dir of earlier file", true, files(fileEntry(20, "x", "a", "b"), fileEntry(20, "x", "a"))},
		{"pad files same path different length", true, files(
			map[string]any{"length": 15, "path": []string{".pad", "x"}, "attr": "p"},
			map[string]any{"length": 25, "path": []string{".pad", "x"}, "attr": "p"})},
		{"pad and regular file same path", true, files(
			map[string]any{"length": 20, "path": []string{"x"}, "attr": "p"}, fileEntry(20, "x"))},
		{"total overflow", true, files(fileEntry(1<<62, "a"), fileEntry(1<<62, "b"), fileEntry(1<<62, "c"), fileEntry(1<<62, "d"))},
		{"total size mismatch", true, files(fileEntry(10, "a"), fileEntry(40, "b"))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := singleInfo()
			if c.multi {
				d = multiInfo()
			}
			c.m(d)
			_, err := ParseInfo([]byte(enc(d)))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseInfo = %v, want ErrInvalid", err)
			}
			_, err = Parse(torrentWith(d))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse = %v, want ErrInvalid", err)
			}
			t.Logf("%v", err)
		})
	}
}

func TestInfoAcceptsEdgeCases(t *testing.T) {
	// Piece length bounds, a non-power-of-two piece length, pad files
	// sharing a path, UTF-8 overrides.
	d := singleInfo()
	d["piece length"] = 1
	d["pieces"] = fakePieces(100)
	mustParseInfo(t, d)

	d = singleInfo()
	d["piece length"] = MaxPieceLength
	d["pieces"] = fakePieces(1)
	mustParseInfo(t, d)

	d = singleInfo()
	d["piece length"] = 33 // 100 bytes -> 4 pieces, last is 1 byte
	info := mustParseInfo(t, d)
	if info.PieceLen(3) != 1 {
		t.Fatalf("last piece len = %d, want 1", info.PieceLen(3))
	}

	d = multiInfo()
	d["files"] = []any{
		fileEntry(10, "a"),
		map[string]any{"length": 6, "path": []string{".pad", "6"}, "attr": "p"},
		fileEntry(10, "b"),
		map[string]any{"length": 6, "path": []string{".pad", "6"}, "attr": "p"},
		fileEntry(8, "c"),
	}
	info = mustParseInfo(t, d)
	if !info.Files[1].IsPad() || info.Files[0].IsPad() {
		t.Fatal("IsPad wrong")
	}

	d = multiInfo()
	d["name.utf-8"] = "dír"
	d["files"] = []any{
		map[string]any{"length": 40, "path": []string{"x"}, "path.utf-8": []string{"ü"}},
	}
	info = mustParseInfo(t, d)
	if info.Name != "dír" || info.Files[0].Path[0] != "ü" {
		t.Fatalf("utf-8 keys not preferred: %q %q", info.Name, info.Files[0].Path)
	}
	d["private"] = 1
	if !mustParseInfo(t, d).Private {
		t.Fatal("private flag lost")
	}
}

func TestSingleFileGeometry(t *testing.T) {
	info := mustParseInfo(t, singleInfo()) // 100 bytes, 32-byte pieces
	if info.MultiFile || len(info.Files) != 1 || info.Files[0].Length != 100 || info.Length != 100 {
		t.Fatalf("files = %+v", info.Files)
	}
	if n := info.NumPieces(); n != 4 {
		t.Fatalf("NumPieces = %d", n)
	}
	wantLens := []int64{32, 32, 32, 4}
	for p, w := range wantLens {
		if got := info.PieceLen(p); got != w {
			t.Errorf("PieceLen(%d) = %d, want %d", p, got, w)
		}
		if got := info.PieceOffset(p); got != int64(p)*32 {
			t.Errorf("PieceOffset(%d) = %d", p, got)
		}
		want := []FileRange{{File: 0, Offset: int64(p) * 32, Length: w}}
		if got := info.FileRanges(p); !reflect.DeepEqual(got, want) {
			t.Errorf("FileRanges(%d) = %+v, want %+v", p, got, want)
		}
	}
	if info.PieceLen(4) != 0 || info.PieceLen(-1) != 0 || info.FileRanges(4) != nil || info.FileRanges(-1) != nil {
		t.Error("out-of-range pieces must be empty")
	}
	h := info.PieceHash(2)
	if string(h[:]) != fakePieces(4)[40:60] {
		t.Error("PieceHash(2) wrong")
	}
	if info.FilePath(0) != "file.bin" || info.FilePath(1) != "" {
		t.Errorf("FilePath = %q", info.FilePath(0))
	}
}

func TestMultiFileGeometry(t *testing.T) {
	// Files: a[0,10) empty@10 sub/b[10,35) sub/deeper/c[35,40); pieces of 16:
	// p0 [0,16) p1 [16,32) p2 [32,40) short.
	info := mustParseInfo(t, multiInfo())
	if !info.MultiFile || info.Length != 40 || info.NumPieces() != 3 {
		t.Fatalf("info = %+v", info)
	}
	wantOffsets := []int64{0, 10, 10, 35}
	for i, f := range info.Files {
		if f.Offset != wantOffsets[i] {
			t.Errorf("file %d offset %d, want %d", i, f.Offset, wantOffsets[i])
		}
	}
	want := [][]FileRange{
		{{0, 0, 10}, {2, 0, 6}}, // zero-length file 1 skipped
		{{2, 6, 16}},
		{{2, 22, 3}, {3, 0, 5}},
	}
	for p, w := range want {
		if got := info.FileRanges(p); !reflect.DeepEqual(got, w) {
			t.Errorf("FileRanges(%d) = %+v, want %+v", p, got, w)
		}
	}
	if info.PieceLen(2) != 8 {
		t.Errorf("short last piece len = %d", info.PieceLen(2))
	}
	wantPaths := []string{"dir/a", "dir/empty", "dir/sub/b", "dir/sub/deeper/c"}
	for f, w := range wantPaths {
		if got := info.FilePath(f); got != filepath.FromSlash(w) {
			t.Errorf("FilePath(%d) = %q, want %q", f, got, w)
		}
	}
}

func TestPieceSpanningThreeFiles(t *testing.T) {
	d := map[string]any{
		"name":         "t",
		"piece length": 100,
		"pieces":       fakePieces(2),
		"files": []any{
			fileEntry(30, "x"),
			fileEntry(0, "z0"),
			fileEntry(40, "y"),
			fileEntry(0, "z1"),
			fileEntry(50, "w"),
			fileEntry(0, "z2"),
		},
	}
	info := mustParseInfo(t, d)
	want0 := []FileRange{{0, 0, 30}, {2, 0, 40}, {4, 0, 30}}
	want1 := []FileRange{{4, 30, 20}}
	if got := info.FileRanges(0); !reflect.DeepEqual(got, want0) {
		t.Errorf("FileRanges(0) = %+v, want %+v", got, want0)
	}
	if got := info.FileRanges(1); !reflect.DeepEqual(got, want1) {
		t.Errorf("FileRanges(1) = %+v, want %+v", got, want1)
	}
}

// TestFileRangesCoverEverything checks on many shapes that the ranges of all
// pieces tile every non-empty file exactly once, in order.
func TestFileRangesCoverEverything(t *testing.T) {
	lengths := []int{0, 1, 7, 0, 0, 64, 3, 129, 0, 16, 1}
	for pl := 1; pl <= 70; pl++ {
		var fl []any
		total := 0
		for i, n := range lengths {
			fl = append(fl, fileEntry(n, "f", string(rune('a'+i))))
			total += n
		}
		d := map[string]any{"name": "n", "piece length": pl, "pieces": fakePieces((total + pl - 1) / pl), "files": fl}
		info := mustParseInfo(t, d)
		next := make([]int64, len(lengths)) // next expected offset per file
		lastFile := -1
		var sum int64
		for p := range info.NumPieces() {
			var plen int64
			for _, r := range info.FileRanges(p) {
				if r.Length <= 0 || r.Offset != next[r.File] || r.File < lastFile {
					t.Fatalf("pl=%d piece %d: bad range %+v (next %d, last file %d)", pl, p, r, next[r.File], lastFile)
				}
				next[r.File] += r.Length
				lastFile = r.File
				plen += r.Length
			}
			if plen != info.PieceLen(p) {
				t.Fatalf("pl=%d piece %d: ranges cover %d bytes, want %d", pl, p, plen, info.PieceLen(p))
			}
			sum += plen
		}
		for i, n := range lengths {
			if next[i] != int64(n) {
				t.Fatalf("pl=%d file %d covered %d of %d bytes", pl, i, next[i], n)
			}
		}
		if sum != int64(total) {
			t.Fatalf("pl=%d covered %d of %d", pl, sum, total)
		}
	}
}

// bigInfo is the info dictionary of 10,000 files of 1 MiB and 3 KiB
// alternating, in 256 KiB pieces.
func bigInfo() map[string]any {
	var fl []any
	total := 0
	for i := range 10000 {
		n := 1 << 20
		if i%2 == 1 {
			n = 3 << 10
		}
		fl = append(fl, fileEntry(n, "d", fmt.Sprintf("f%05d", i)))
		total += n
	}
	pl := 256 << 10
	return map[string]any{"name": "big", "piece length": pl, "pieces": fakePieces((total + pl - 1) / pl), "files": fl}
}

// BenchmarkParse parses a .torrent of 10,000 files (scan, decode, checks).
func BenchmarkParse(b *testing.B) {
	data := []byte(enc(map[string]any{"announce": "http://t.example/announce", "info": bigInfo()}))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScan is the strict bencode pass alone over the same torrent.
func BenchmarkScan(b *testing.B) {
	data := []byte(enc(map[string]any{"announce": "http://t.example/announce", "info": bigInfo()}))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := scanDocument(data, true, topKeys...); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFileRanges(b *testing.B) {
	info, err := ParseInfo([]byte(enc(bigInfo())))
	if err != nil {
		b.Fatal(err)
	}
	n := info.NumPieces()
	var buf []FileRange
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		buf = info.AppendFileRanges(buf[:0], (i*7919)%n)
	}
}

// TestDeepPathsAreLinear: collision checks must not be quadratic in the
// number of path components.
func TestDeepPathsAreLinear(t *testing.T) {
	const depth = 100_000
	comps := make([]string, depth)
	for i := range comps {
		comps[i] = "d"
	}
	d := map[string]any{"name": "n", "piece length": 16, "pieces": fakePieces(1),
		"files": []any{fileEntry(8, comps...), fileEntry(8, append(comps[:depth-1:depth-1], "e")...)}}
	raw := []byte(enc(d))
	start := time.Now()
	info, err := ParseInfo(raw)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 15*time.Second { // generous: CI machines are loaded; quadratic takes minutes
		t.Fatalf("ParseInfo of %d-component paths took %v", depth, el)
	}
	if len(info.Files[1].Path) != depth {
		t.Fatal("path lost")
	}
}
