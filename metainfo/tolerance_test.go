package metainfo

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// TestParseToleratesWithWarnings: what libtorrent and Transmission accept
// (issue 9 bug 5) is accepted, with a warning naming what was ignored, and
// the info-hash is the same as without the oddity.
func TestParseToleratesWithWarnings(t *testing.T) {
	info := enc(singleInfo())
	const ann = "8:announce27:http://127.0.0.1:1/announce"
	clean := "d" + ann + "4:info" + info + "e"
	want, err := Parse([]byte(clean))
	if err != nil || len(want.Warnings) != 0 {
		t.Fatalf("clean torrent: %v, warnings %v", err, want.Warnings)
	}
	cases := []struct {
		name     string
		in       string
		kind     error
		msg      string
		announce string
		tiers    [][]string
	}{
		{"trailing newline", clean + "\n", ErrTrailingData,
			"metainfo: trailing data after the torrent's dictionary: 1 bytes ignored",
			"http://127.0.0.1:1/announce", [][]string{{"http://127.0.0.1:1/announce"}}},
		{"trailing document", clean + clean, ErrTrailingData,
			"metainfo: trailing data after the torrent's dictionary: " + strconv.Itoa(len(clean)) + " bytes ignored",
			"http://127.0.0.1:1/announce", [][]string{{"http://127.0.0.1:1/announce"}}},
		{"duplicate announce", "d" + ann + "8:announce19:http://second/later4:info" + info + "e", ErrDuplicateKey,
			`metainfo: duplicate dictionary key outside "info": ["announce"]; the first value is used`,
			"http://127.0.0.1:1/announce", [][]string{{"http://127.0.0.1:1/announce"}}},
		{"duplicate nested key", "d" + ann + "4:infod" + info[1:] + "5:x-extd1:ai1e1:ai2eee", ErrDuplicateKey,
			`metainfo: duplicate dictionary key outside "info": ["a"]; the first value is used`,
			"http://127.0.0.1:1/announce", [][]string{{"http://127.0.0.1:1/announce"}}},
		{"empty string announce-list", "d" + ann + "13:announce-list0:4:info" + info + "e", ErrBadAnnounceList,
			"metainfo: malformed announce-list: it is an empty string, not a list of tiers; ignored",
			"http://127.0.0.1:1/announce", [][]string{{"http://127.0.0.1:1/announce"}}},
		{"announce-list tier not a list", "d" + ann + "13:announce-listl4:abcdl9:udp://x:1ei7ee4:info" + info + "e", ErrBadAnnounceList,
			"metainfo: malformed announce-list: tier 0 is a string, not a list (and 1 more problems); ignored",
			"http://127.0.0.1:1/announce", [][]string{{"udp://x:1"}}},
		{"announce-list URL not a string", "d" + ann + "13:announce-listll9:udp://x:1i1eee4:info" + info + "e", ErrBadAnnounceList,
			"metainfo: malformed announce-list: tier 0 entry 1 is an integer, not a URL; ignored",
			"http://127.0.0.1:1/announce", [][]string{{"udp://x:1"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tor, err := Parse([]byte(c.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(tor.Warnings) != 1 || !errors.Is(tor.Warnings[0], c.kind) {
				t.Fatalf("warnings %v, want one %v", tor.Warnings, c.kind)
			}
			if got := tor.Warnings[0].Error(); got != c.msg {
				t.Errorf("warning\n got %q\nwant %q", got, c.msg)
			}
			if tor.InfoHash != want.InfoHash || !reflect.DeepEqual(tor.Info, want.Info) {
				t.Errorf("info-hash %x, want %x", tor.InfoHash, want.InfoHash)
			}
			if tor.Announce != c.announce || !reflect.DeepEqual(tor.Tiers(), c.tiers) {
				t.Errorf("announce %q tiers %q, want %q %q", tor.Announce, tor.Tiers(), c.announce, c.tiers)
			}
		})
	}
}

// TestParseStaysStrictWhereItMatters: tolerance never reaches the info
// dictionary (its bytes are the identity of the torrent) nor file paths.
func TestParseStaysStrictWhereItMatters(t *testing.T) {
	info := enc(singleInfo())
	unsafe := singleInfo()
	unsafe["name"] = ".."
	cases := []struct {
		name string
		in   string
		kind error
	}{
		{"duplicate key in info", "d4:infod" + info[1:len(info)-1] + "6:lengthi100eee", ErrMalformed},
		{"duplicate key nested in info", "d4:infod" + info[1:len(info)-1] + "1:xd1:ai1e1:ai1eeee", ErrMalformed},
		{"second info", "d4:info" + info + "4:info" + info + "e", ErrMalformed},
		{"unsafe name with trailing newline", enc(map[string]any{"info": unsafe}) + "\n", ErrInvalid},
		{"unsafe path with duplicate key", "d1:ai1e1:ai2e4:info" + enc(map[string]any{
			"name": "d", "piece length": 32, "pieces": fakePieces(1),
			"files": []any{fileEntry(10, "..", "etc")}}) + "e", ErrInvalid},
		{"garbage before the end", "d4:info" + info + "x", ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Parse([]byte(c.in)); !errors.Is(err, c.kind) {
				t.Fatalf("Parse = %v, want %v", err, c.kind)
			}
		})
	}
	if _, err := ParseInfo([]byte(info + "\n")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("ParseInfo with trailing data = %v, want ErrMalformed (BEP 9 info must be exact)", err)
	}
}

func v2Info(withPieces bool) map[string]any {
	d := map[string]any{
		"name":         "v2.bin",
		"piece length": 16384,
		"meta version": 2,
		"file tree": map[string]any{"v2.bin": map[string]any{"": map[string]any{
			"length": 100, "pieces root": strings.Repeat("r", 32)}}},
	}
	if withPieces { // hybrid
		d["length"] = 100
		d["pieces"] = fakePieces(1)
	}
	return d
}

func TestV2OnlyTorrent(t *testing.T) {
	_, err := Parse(torrentWith(v2Info(false)))
	if !errors.Is(err, ErrV2Only) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("Parse(v2-only) = %v, want ErrV2Only", err)
	}
	if got, want := err.Error(), "metainfo: v2-only (BEP 52) torrent: not supported yet"; got != want {
		t.Fatalf("error %q, want %q", got, want)
	}
	if _, err := ParseInfo([]byte(enc(v2Info(false)))); !errors.Is(err, ErrV2Only) {
		t.Fatalf("ParseInfo(v2-only) = %v", err)
	}
	noTree := v2Info(false)
	delete(noTree, "file tree")
	if _, err := ParseInfo([]byte(enc(noTree))); !errors.Is(err, ErrV2Only) {
		t.Fatalf("ParseInfo(meta version 2) = %v", err)
	}
	tor, err := Parse(torrentWith(v2Info(true)))
	if err != nil || tor.Info.Length != 100 {
		t.Fatalf("hybrid v1/v2 torrent: %v", err)
	}
	v1 := singleInfo()
	delete(v1, "pieces")
	if _, err := ParseInfo([]byte(enc(v1))); errors.Is(err, ErrV2Only) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("v1 without pieces = %v, want a plain ErrInvalid", err)
	}
}

func TestMagnetIsRefusedClearly(t *testing.T) {
	for s, want := range map[string]bool{
		"magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a": true,
		"MAGNET:?xt=urn:btih:x": true,
		"magnet:":               true,
		"magnet.torrent":        false,
		"/tmp/magnet:x":         false,
		"":                      false,
	} {
		if IsMagnet(s) != want {
			t.Errorf("IsMagnet(%q) = %v", s, !want)
		}
	}
	_, err := Load("magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&dn=x")
	if !errors.Is(err, ErrMagnetNotSupported) {
		t.Fatalf("Load(magnet) = %v", err)
	}
	if got, want := err.Error(), "metainfo: magnet links are not supported yet"; got != want {
		t.Fatalf("error %q, want %q", got, want)
	}
	// A file whose name merely contains "magnet" is still loaded.
	p := filepath.Join(t.TempDir(), "magnet.torrent")
	if err := os.WriteFile(p, torrentWith(singleInfo()), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err != nil {
		t.Fatal(err)
	}
}

func TestCheckTrackerURL(t *testing.T) {
	good := []string{
		"http://tracker.example/announce",
		"https://t.example:8443/a?passkey=x",
		"udp://127.0.0.1:6969",
		"udp://[::1]:6969/announce",
		"HTTP://Upper.example/announce",
	}
	for _, u := range good {
		if err := CheckTrackerURL(u); err != nil {
			t.Errorf("CheckTrackerURL(%q) = %v", u, err)
		}
	}
	bad := []struct{ url, msg string }{
		{"", `metainfo: unusable tracker URL "": the URL is empty`},
		{"file:///etc/passwd", `metainfo: unusable tracker URL "file:///etc/passwd": scheme "file" is not supported (use http, https or udp)`},
		{"javascript:alert(1)", `metainfo: unusable tracker URL "javascript:alert(1)": scheme "javascript" is not supported (use http, https or udp)`},
		{"tracker.example/announce", `metainfo: unusable tracker URL "tracker.example/announce": it has no scheme (use http://, https:// or udp://)`},
		{"http:///announce", `metainfo: unusable tracker URL "http:///announce": it has no host (want http://host[:port]/...)`},
		{"http:tracker", `metainfo: unusable tracker URL "http:tracker": it has no host (want http://host[:port]/...)`},
		{"udp://tracker.example/announce", `metainfo: unusable tracker URL "udp://tracker.example/announce": a udp tracker URL needs a port (udp://host:port)`},
		{"http://t.example:0/a", `metainfo: unusable tracker URL "http://t.example:0/a": port "0" is not a number from 1 to 65535`},
		{"udp://t.example:70000", `metainfo: unusable tracker URL "udp://t.example:70000": port "70000" is not a number from 1 to 65535`},
		{"http://t.example:x/a", `metainfo: unusable tracker URL "http://t.example:x/a": it does not parse as a URL: invalid port ":x" after host`},
		{"http://a b/", `metainfo: unusable tracker URL "http://a b/": it does not parse as a URL: invalid character " " in host name`},
	}
	for _, c := range bad {
		err := CheckTrackerURL(c.url)
		if !errors.Is(err, ErrBadTrackerURL) {
			t.Errorf("CheckTrackerURL(%q) = %v, want ErrBadTrackerURL", c.url, err)
			continue
		}
		if err.Error() != c.msg {
			t.Errorf("CheckTrackerURL(%q)\n got %q\nwant %q", c.url, err, c.msg)
		}
	}
	long := strings.Repeat("a", 1<<20)
	for _, u := range []string{"file://" + long, long + "://x", "http://h:" + long + "/", "http://" + long + " x/", "udp://h:1" + long} {
		if err := CheckTrackerURL(u); err == nil || len(err.Error()) > 500 {
			t.Fatalf("a 1 MiB URL gives %v", err)
		}
	}
}

func TestTrackersAndValidate(t *testing.T) {
	tor := &Torrent{Announce: "http://a/ann", AnnounceList: [][]string{{"udp://b:1", "file:///x"}, {"udp://b:1", "http://c/"}}}
	if got, want := tor.Trackers(), []string{"udp://b:1", "file:///x", "http://c/"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Trackers = %q, want %q", got, want)
	}
	if err := tor.ValidateTrackers(); err != nil {
		t.Fatalf("ValidateTrackers with usable trackers = %v", err)
	}
	if got := (&Torrent{Announce: "http://a/ann"}).Trackers(); !reflect.DeepEqual(got, []string{"http://a/ann"}) {
		t.Fatalf("Trackers from announce = %q", got)
	}

	err := (&Torrent{}).ValidateTrackers()
	if !errors.Is(err, ErrNoUsableTracker) || errors.Is(err, ErrBadTrackerURL) ||
		err.Error() != "metainfo: no usable tracker: the torrent lists no tracker" {
		t.Fatalf("no trackers: %v", err)
	}
	err = (&Torrent{Announce: "file:///etc/passwd"}).ValidateTrackers()
	if !errors.Is(err, ErrNoUsableTracker) || !errors.Is(err, ErrBadTrackerURL) {
		t.Fatalf("file tracker: %v", err)
	}
	if got, want := err.Error(), `metainfo: no usable tracker: "file:///etc/passwd": scheme "file" is not supported (use http, https or udp)`; got != want {
		t.Fatalf("error\n got %q\nwant %q", got, want)
	}
	many := &Torrent{AnnounceList: [][]string{{"a:", "b:", "c:", "d:", "e:"}}}
	if got, want := many.ValidateTrackers().Error(), `metainfo: no usable tracker: "a:": scheme "a" is not supported (use http, https or udp); "b:": scheme "b" is not supported (use http, https or udp); "c:": scheme "c" is not supported (use http, https or udp); and 2 more`; got != want {
		t.Fatalf("error\n got %q\nwant %q", got, want)
	}
}
