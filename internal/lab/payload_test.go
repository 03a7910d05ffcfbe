package lab

import (
	"bytes"
	"context"
	"crypto/sha1"
	"os"
	"path/filepath"
	"testing"

	"flotilla/metainfo"
)

func TestPayloadDeterministic(t *testing.T) {
	spec := PayloadSpec{Name: "p", Seed: 7, Files: []FileSpec{
		{Path: "a/one.bin", Size: 3<<20 + 17}, {Path: "empty", Size: 0}, {Path: "a/b/two", Size: 1000},
	}}
	d1, d2 := t.TempDir(), t.TempDir()
	p1, err := WritePayload(d1, spec)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := WritePayload(d2, spec)
	if err != nil {
		t.Fatal(err)
	}
	if p1.Total != 3<<20+17+1000 || len(p1.Files) != 3 || !p1.MultiFile {
		t.Fatalf("payload %+v", p1)
	}
	for i := range p1.Files {
		if p1.Files[i] != p2.Files[i] {
			t.Fatalf("file %d differs between runs: %+v vs %+v", i, p1.Files[i], p2.Files[i])
		}
	}
	if p1.Files[0].SHA256 == p1.Files[2].SHA256 {
		t.Fatal("two files share a stream")
	}
	if err := p1.Verify(d2); err != nil {
		t.Fatal(err)
	}
	if !p1.Complete(d2) || p1.Complete(t.TempDir()) {
		t.Fatal("Complete is wrong")
	}
	spec.Seed = 8
	p3, err := WritePayload(t.TempDir(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if p3.Files[0].SHA256 == p1.Files[0].SHA256 {
		t.Fatal("seed does not change the content")
	}
}

func TestPayloadSpecValidate(t *testing.T) {
	for _, s := range []PayloadSpec{
		{Name: "", Size: 1},
		{Name: "a/b", Size: 1},
		{Name: "x", Size: 0},
		{Name: "x", Files: []FileSpec{{Path: "../up", Size: 1}}},
		{Name: "x", Files: []FileSpec{{Path: "a//b", Size: 1}}},
		{Name: "x", Files: []FileSpec{{Path: "a", Size: 0}}},
	} {
		if err := s.Validate(); err == nil {
			t.Errorf("%+v accepted", s)
		}
	}
}

// TestMakeTorrent checks the info-hash against one computed independently
// (the info dictionary rebuilt by hand), and that replacing the trackers
// keeps it.
func TestMakeTorrent(t *testing.T) {
	dir := t.TempDir()
	p, err := WritePayload(dir, PayloadSpec{Name: "single.bin", Seed: 1, Size: 40000})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "x.torrent")
	tor, err := MakeTorrent(context.Background(), p, 16<<10, [][]string{{"http://127.0.0.1:1/announce"}}, out)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p.Path)
	var pieces []byte
	for off := 0; off < len(data); off += 16 << 10 {
		h := sha1.Sum(data[off:min(off+16<<10, len(data))])
		pieces = append(pieces, h[:]...)
	}
	info := "d6:lengthi40000e4:name10:single.bin12:piece lengthi16384e6:pieces60:" + string(pieces) + "e"
	if want := sha1.Sum([]byte(info)); tor.InfoHash != want {
		t.Fatalf("info-hash %x, want %x", tor.InfoHash, want)
	}
	if err := SetTrackers(out, [][]string{{"http://127.0.0.1:6969/announce"}}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	if !bytes.Contains(b, []byte("8:announce30:http://127.0.0.1:6969/announce")) || bytes.Contains(b, []byte(":1/announce")) {
		t.Fatalf("trackers not replaced: %q", b[:100])
	}
	if ih, err := InfoHashOf(b); err != nil || ih != tor.InfoHash {
		t.Fatalf("info-hash after SetTrackers %x, %v", ih, err)
	}
}

func TestMakeTorrentMultiFile(t *testing.T) {
	dir := t.TempDir()
	p, err := WritePayload(dir, PayloadSpec{Name: "multi", Seed: 3, Files: []FileSpec{
		{Path: "a/x", Size: 20000}, {Path: "empty", Size: 0}, {Path: "b/c/y", Size: 50001},
	}})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "m.torrent")
	if _, err := MakeTorrent(context.Background(), p, 16<<10, [][]string{{"http://127.0.0.1:1/announce"}}, out); err != nil {
		t.Fatal(err)
	}
	mt, err := metainfo.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if !mt.Info.MultiFile || len(mt.Info.Files) != 3 || mt.Info.Length != 70001 {
		t.Fatalf("info %+v", mt.Info)
	}
	for i, f := range mt.Info.Files {
		if got, want := mt.Info.FilePath(i), p.Files[i].Rel; got != want || f.Length != p.Files[i].Size {
			t.Errorf("file %d: %s (%d bytes), want %s (%d)", i, got, f.Length, want, p.Files[i].Size)
		}
	}
	// Every piece hash matches the concatenated files.
	var all []byte
	for _, f := range p.Files {
		b, _ := os.ReadFile(filepath.Join(dir, f.Rel))
		all = append(all, b...)
	}
	for i := range mt.Info.NumPieces() {
		off := mt.Info.PieceOffset(i)
		if sha1.Sum(all[off:off+mt.Info.PieceLen(i)]) != mt.Info.PieceHash(i) {
			t.Fatalf("piece %d hash differs", i)
		}
	}
}

func TestBdecode(t *testing.T) {
	m, spans, err := bdecodeDict([]byte("d1:ai-5e1:bl1:xi2ee1:cd1:di0eee"))
	if err != nil {
		t.Fatal(err)
	}
	if m["a"] != int64(-5) || spans["c"] != [2]int{22, 30} {
		t.Fatalf("got %v %v", m, spans)
	}
	for _, bad := range []string{"", "d", "i1", "5:ab", "d1:a", "di1ei2ee", "x", "li1e", "d1:ai1eex"} {
		if _, _, err := bdecodeDict([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzBdecode: the lab's bencode reader never panics and a value's span
// always lies inside the input.
func FuzzBdecode(f *testing.F) {
	for _, s := range []string{"d8:announce3:abc4:infod4:name1:xee", "d5:filesd20:aaaaaaaaaaaaaaaaaaaad8:completei3eeee", "li1ee", "i-0e"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, spans, err := bdecodeDict(b)
		if err != nil {
			return
		}
		for k, s := range spans {
			if s[0] < 0 || s[0] > s[1] || s[1] > len(b) {
				t.Fatalf("span %q %v outside %d bytes", k, s, len(b))
			}
		}
	})
}
