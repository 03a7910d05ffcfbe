package metainfo

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"flotilla/internal/testenv"
)

// writeFile creates dir/rel with n random bytes and returns the content.
func writeFile(t *testing.T, dir, rel string, n int) []byte {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, n)
	rand.Read(b)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMktorrentInfoHash checks the info-hash, the file list and every piece
// hash of torrents made by mktorrent, against hashes computed independently
// of the parser: the info bytes are cut by hand, and piece data is read
// through FileRanges and compared with mktorrent's own hashes.
func TestMktorrentInfoHash(t *testing.T) {
	testenv.Require(t, "mktorrent")
	dir := t.TempDir()
	content := map[string][]byte{
		"a.bin":             writeFile(t, dir, "data/a.bin", 70000),
		"empty":             writeFile(t, dir, "data/empty", 0),
		"sub/b.bin":         writeFile(t, dir, "data/sub/b.bin", 5),
		"sub/deeper/c.bin":  writeFile(t, dir, "data/sub/deeper/c.bin", 40000),
		"sub/deeper/z.last": writeFile(t, dir, "data/sub/deeper/z.last", 1),
	}
	single := writeFile(t, dir, "single.bin", 100001)

	run := func(out string, args ...string) []byte {
		t.Helper()
		cmd := exec.Command("mktorrent", append([]string{"-o", out}, args...)...)
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mktorrent %v: %v\n%s", args, err, b)
		}
		b, err := os.ReadFile(filepath.Join(dir, out))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	multi := run("m.torrent", "-a", "http://127.0.0.1:6969/announce", "-a", "udp://127.0.0.1:6969,http://127.0.0.2/a",
		"-c", "a comment", "-p", "-l", "15", "data")
	one := run("s.torrent", "-a", "http://127.0.0.1:6969/announce", "-d", "-l", "16", "single.bin")

	for _, c := range []struct {
		name string
		raw  []byte
	}{{"multi", multi}, {"single", one}} {
		t.Run(c.name, func(t *testing.T) {
			tor, err := Parse(c.raw)
			if err != nil {
				t.Fatal(err)
			}
			// "info" is the last key of mktorrent's sorted top-level dict:
			// the info bytes run from after "4:info" to before the final "e".
			i := bytes.LastIndex(c.raw, []byte("4:infod"))
			want := sha1.Sum(c.raw[i+len("4:info") : len(c.raw)-1])
			if tor.InfoHash != want {
				t.Fatalf("InfoHash %x, want %x", tor.InfoHash, want)
			}
			if !bytes.Equal(tor.InfoBytes, c.raw[i+6:len(c.raw)-1]) {
				t.Fatal("InfoBytes differ from the file's bytes")
			}
			if testenvHas("transmission-show") {
				out, err := exec.Command("transmission-show", "-i", filepath.Join(dir, c.name[:1]+".torrent")).CombinedOutput()
				if err != nil {
					t.Fatalf("transmission-show: %v\n%s", err, out)
				}
				m := regexp.MustCompile(`Hash(?: v1)?: ([0-9a-f]{40})`).FindSubmatch(out)
				if m == nil || string(m[1]) != hex.EncodeToString(want[:]) {
					t.Fatalf("transmission-show disagrees: %s", out)
				}
			}
		})
	}

	tor, _ := Parse(multi)
	info := tor.Info
	if !info.MultiFile || !info.Private || info.Name != "data" || info.PieceLength != 1<<15 {
		t.Fatalf("info = %+v", info)
	}
	if tor.Comment != "a comment" || !strings.HasPrefix(tor.CreatedBy, "mktorrent") || tor.CreationDate.IsZero() ||
		time.Since(tor.CreationDate) > time.Hour {
		t.Fatalf("metadata: %q %q %v", tor.Comment, tor.CreatedBy, tor.CreationDate)
	}
	wantTiers := [][]string{{"http://127.0.0.1:6969/announce"}, {"udp://127.0.0.1:6969", "http://127.0.0.2/a"}}
	if !reflect.DeepEqual(tor.Tiers(), wantTiers) {
		t.Fatalf("Tiers = %q", tor.Tiers())
	}
	var total int64
	for f, file := range info.Files {
		rel := strings.Join(file.Path, "/")
		data, ok := content[rel]
		if !ok || int64(len(data)) != file.Length {
			t.Fatalf("file %d %q: unexpected (len %d)", f, rel, file.Length)
		}
		if info.FilePath(f) != filepath.Join("data", filepath.FromSlash(rel)) {
			t.Fatalf("FilePath(%d) = %q", f, info.FilePath(f))
		}
		total += file.Length
	}
	if total != info.Length || len(info.Files) != len(content) {
		t.Fatalf("total %d files %d", info.Length, len(info.Files))
	}
	// Every piece hash mktorrent wrote must match the data FileRanges names.
	for p := range info.NumPieces() {
		h := sha1.New()
		for _, r := range info.FileRanges(p) {
			data := content[strings.Join(info.Files[r.File].Path, "/")]
			h.Write(data[r.Offset : r.Offset+r.Length])
		}
		if got, want := info.PieceHash(p), [20]byte(h.Sum(nil)); got != want {
			t.Fatalf("piece %d: hash of FileRanges data differs from mktorrent's", p)
		}
	}

	tor, _ = Parse(one)
	if tor.Info.MultiFile || tor.Info.Length != int64(len(single)) || !tor.CreationDate.IsZero() || tor.Info.Private {
		t.Fatalf("single = %+v", tor.Info)
	}
	for p := range tor.Info.NumPieces() {
		off := tor.Info.PieceOffset(p)
		if sha1.Sum(single[off:off+tor.Info.PieceLen(p)]) != tor.Info.PieceHash(p) {
			t.Fatalf("single piece %d hash mismatch", p)
		}
	}
}

func testenvHas(prog string) bool {
	_, err := exec.LookPath(prog)
	return err == nil
}

// TestInfoHashOfUnusualEncoding: an info dict with unsorted keys and an
// unknown nested key is legal; its hash must be of the bytes as written, not
// of a canonical re-encoding.
func TestInfoHashOfUnusualEncoding(t *testing.T) {
	pieces := fakePieces(1)
	info := "d6:pieces20:" + pieces + "4:name3:abc12:piece lengthi16e6:lengthi10e" +
		"5:x-fooli1ed0:le1:ad1:bi-5eeee3:zzz0:e"
	raw := []byte("d4:infod" + info[1:] + "8:announce7:http://e")
	tor, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := sha1.Sum([]byte(info))
	if tor.InfoHash != want || string(tor.InfoBytes) != info {
		t.Fatalf("InfoHash %x, want %x", tor.InfoHash, want)
	}
	if sha1.Sum(tor.Info.Encode()) == want {
		t.Fatal("test is meaningless: the re-encoding equals the original")
	}
	if tor.Info.Name != "abc" || tor.Info.Length != 10 || tor.Announce != "http://" {
		t.Fatalf("parsed %+v", tor.Info)
	}
	pi, err := ParseInfo([]byte(info))
	if err != nil || !reflect.DeepEqual(pi, tor.Info) {
		t.Fatalf("ParseInfo: %v / %+v", err, pi)
	}
}

func TestTorrentValidationErrors(t *testing.T) {
	info := singleInfo()
	cases := []struct {
		name string
		doc  map[string]any
	}{
		{"missing info", map[string]any{"announce": "x"}},
		{"info not dict", map[string]any{"info": "x"}},
		{"announce mistyped", map[string]any{"info": info, "announce": 1}},
		{"announce-list not list", map[string]any{"info": info, "announce-list": "x"}},
		{"announce-list tier not list", map[string]any{"info": info, "announce-list": []any{"x"}}},
		{"announce-list url not string", map[string]any{"info": info, "announce-list": []any{[]any{1}}}},
		{"comment mistyped", map[string]any{"info": info, "comment": 1}},
		{"created by mistyped", map[string]any{"info": info, "created by": []any{}}},
		{"creation date mistyped", map[string]any{"info": info, "creation date": "2020"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(enc(c.doc)))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestTiers(t *testing.T) {
	cases := []struct {
		tor  Torrent
		want [][]string
	}{
		{Torrent{Announce: "a"}, [][]string{{"a"}}},
		{Torrent{}, nil},
		{Torrent{Announce: "a", AnnounceList: [][]string{{}, {""}}}, [][]string{{"a"}}},
		{Torrent{Announce: "a", AnnounceList: [][]string{{"b", "c", "b"}, {"c"}, {"d", ""}}}, [][]string{{"b", "c"}, {"d"}}},
	}
	for i, c := range cases {
		if got := c.tor.Tiers(); !reflect.DeepEqual(got, c.want) {
			t.Errorf("case %d: Tiers = %q, want %q", i, got, c.want)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.torrent")
	if err := os.WriteFile(p, torrentWith(multiInfo()), 0o644); err != nil {
		t.Fatal(err)
	}
	tor, err := Load(p)
	if err != nil || tor.Info.Name != "dir" {
		t.Fatalf("Load: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load(missing) = %v", err)
	}
	if err := os.WriteFile(p, []byte("d4:infoi1ee"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), p) {
		t.Fatalf("Load(bad) = %v", err)
	}
}

func TestBuildRoundTrip(t *testing.T) {
	data := make([]byte, 100_003)
	rand.Read(data)
	files := []File{
		{Path: []string{"a"}, Length: 50_000},
		{Path: []string{"e"}, Length: 0},
		{Path: []string{"s", "b"}, Length: 50_003},
	}
	trackers := [][]string{{"http://127.0.0.1:1/announce"}, {"udp://127.0.0.1:2", "udp://127.0.0.1:3"}}
	raw, err := Build("multi", files, 16384, trackers, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tor, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(tor.Tiers(), trackers) || tor.Announce != trackers[0][0] {
		t.Fatalf("tiers %q", tor.Tiers())
	}
	if tor.Info.NumPieces() != 7 || tor.Info.Length != int64(len(data)) || len(tor.Info.Files) != 3 {
		t.Fatalf("info %+v", tor.Info)
	}
	for p := range tor.Info.NumPieces() {
		off := tor.Info.PieceOffset(p)
		if sha1.Sum(data[off:off+tor.Info.PieceLen(p)]) != tor.Info.PieceHash(p) {
			t.Fatalf("piece %d hash", p)
		}
	}
	if !bytes.Equal(tor.Encode(), raw) {
		t.Fatal("Encode of a canonical torrent is not byte-identical")
	}

	raw, err = Build("one.bin", []File{{Length: 10}}, 4, nil, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tor, err = Parse(raw)
	if err != nil || tor.Info.MultiFile || tor.Info.Name != "one.bin" || tor.Info.NumPieces() != 3 || tor.Tiers() != nil {
		t.Fatalf("single: %v %+v", err, tor)
	}

	if _, err := Build("x", []File{{Length: 10}}, 4, nil, bytes.NewReader(data[:5])); err == nil {
		t.Fatal("short data accepted")
	}
	if _, err := Build("..", []File{{Length: 10}}, 4, nil, bytes.NewReader(data)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unsafe name: %v", err)
	}
	if _, err := Build("x", []File{{Length: 10}}, 0, nil, bytes.NewReader(data)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("zero piece length: %v", err)
	}
}
