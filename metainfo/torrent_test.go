package metainfo

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

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
