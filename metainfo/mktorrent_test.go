package metainfo_test

// These tests run real programs through internal/testenv, which imports
// packages that import metainfo: they live in the external test package to
// avoid an import cycle.

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"flotilla/internal/testenv"
	"flotilla/metainfo"
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
	testenv.Require(t, "mktorrent", "transmission-show")
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
			tor, err := metainfo.Parse(c.raw)
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
			{
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

	tor, _ := metainfo.Parse(multi)
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

	tor, _ = metainfo.Parse(one)
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
