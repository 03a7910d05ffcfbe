package metainfo

import (
	"bytes"
	"crypto/sha1"
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"

	bencode "github.com/jackpal/bencode-go"

	"flotilla/internal/fuzzcorpus"
)

// The seed corpus lives in testdata/fuzz/<FuzzName>/ (valid single- and
// multi-file torrents, torrents by mktorrent, magnets, and malformed inputs).
// Run for example: go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 60s ./metainfo

func checkErr(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInvalid) {
		t.Fatalf("error wraps neither ErrMalformed nor ErrInvalid: %v", err)
	}
}

// checkInfo checks geometry invariants and that the canonical re-encoding of
// info parses back to an equal Info.
func checkInfo(t *testing.T, info *Info) {
	t.Helper()
	if len(info.Files) == 0 || info.NumPieces() == 0 || info.Length <= 0 {
		t.Fatalf("degenerate info accepted: %+v", info)
	}
	var sum int64
	for _, f := range info.Files {
		if f.Offset != sum || f.Length < 0 {
			t.Fatalf("bad file offsets: %+v", info.Files)
		}
		sum += f.Length
	}
	if sum != info.Length {
		t.Fatalf("file lengths sum %d, Length %d", sum, info.Length)
	}
	// Check the first and last few pieces (all pieces would be slow).
	n := info.NumPieces()
	for _, p := range []int{0, 1, n / 2, n - 2, n - 1} {
		if p < 0 || p >= n {
			continue
		}
		var got int64
		for _, r := range info.FileRanges(p) {
			f := info.Files[r.File]
			if r.Length <= 0 || r.Offset < 0 || r.Offset+r.Length > f.Length {
				t.Fatalf("piece %d: bad range %+v of file %+v", p, r, f)
			}
			got += r.Length
		}
		if got != info.PieceLen(p) || got <= 0 {
			t.Fatalf("piece %d: ranges cover %d, PieceLen %d", p, got, info.PieceLen(p))
		}
	}
	again, err := ParseInfo(info.Encode())
	if err != nil {
		t.Fatalf("canonical re-encoding does not parse: %v", err)
	}
	if !reflect.DeepEqual(again, info) {
		t.Fatalf("round trip changed info:\n%+v\n%+v", info, again)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(torrentWith(singleInfo()))
	f.Add(torrentWith(multiInfo()))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Differential check: what the strict scanner accepts, bencode-go
		// must decode (otherwise Parse would mask a scanner bug).
		if _, err := scanDocument(data, false); err == nil {
			if _, err := bencode.Decode(bytes.NewReader(data)); err != nil {
				t.Fatalf("scanner accepted what bencode-go rejects: %v", err)
			}
		}
		tor, err := Parse(data)
		if err != nil {
			checkErr(t, err)
			return
		}
		if sha1.Sum(tor.InfoBytes) != tor.InfoHash || !bytes.Contains(data, tor.InfoBytes) {
			t.Fatal("InfoHash is not the hash of bytes from the input")
		}
		if len(tor.Warnings) > 3 {
			t.Fatalf("%d warnings, want at most one of each kind: %v", len(tor.Warnings), tor.Warnings)
		}
		for _, w := range tor.Warnings {
			if !errors.Is(w, ErrTrailingData) && !errors.Is(w, ErrDuplicateKey) && !errors.Is(w, ErrBadAnnounceList) {
				t.Fatalf("warning of no known kind: %v", w)
			}
		}
		// Tolerance never reaches the info dictionary: its exact bytes
		// are strictly valid on their own.
		if _, err := ParseInfo(tor.InfoBytes); err != nil {
			t.Fatalf("accepted torrent's info does not pass ParseInfo: %v", err)
		}
		checkInfo(t, tor.Info)
		tor2, err := Parse(tor.Encode())
		if err != nil {
			t.Fatalf("re-encoded torrent does not parse: %v", err)
		}
		if tor2.InfoHash != tor.InfoHash || !reflect.DeepEqual(tor2.Info, tor.Info) ||
			tor2.Announce != tor.Announce || !reflect.DeepEqual(tor2.AnnounceList, tor.AnnounceList) ||
			!tor2.CreationDate.Equal(tor.CreationDate) || tor2.Comment != tor.Comment || tor2.CreatedBy != tor.CreatedBy {
			t.Fatalf("round trip changed torrent:\n%+v\n%+v", tor, tor2)
		}
		_ = tor.Tiers()
		if err := tor.ValidateTrackers(); err != nil && !errors.Is(err, ErrNoUsableTracker) {
			t.Fatalf("ValidateTrackers: %v", err)
		}
	})
}

func FuzzParseInfo(f *testing.F) {
	f.Add([]byte(enc(singleInfo())))
	f.Add([]byte(enc(multiInfo())))
	f.Fuzz(func(t *testing.T, raw []byte) {
		info, err := ParseInfo(raw)
		if err != nil {
			checkErr(t, err)
			return
		}
		checkInfo(t, info)
	})
}

func FuzzParseMagnet(f *testing.F) {
	f.Add("magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&dn=x&tr=udp%3A%2F%2Ft%3A1&x.pe=[::1]:1")
	f.Fuzz(func(t *testing.T, uri string) {
		m, err := ParseMagnet(uri)
		if err != nil {
			checkErr(t, err)
			return
		}
		s := m.String()
		m2, err := ParseMagnet(s)
		if err != nil {
			t.Fatalf("String() %q does not parse: %v", s, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip changed magnet:\n%+v\n%+v", m, m2)
		}
		if m2.String() != s {
			t.Fatalf("String not stable: %q vs %q", s, m2.String())
		}
	})
}

// FuzzCheckTrackerURL: no panic, every refusal matches ErrBadTrackerURL
// with a bounded message, and every accepted URL really has an announceable
// scheme, a host and (for udp) a port.
func FuzzCheckTrackerURL(f *testing.F) {
	for _, s := range []string{"http://t.example/announce", "udp://[::1]:6969", "file:///etc/passwd",
		"javascript:alert(1)", "http:///x", "udp://h", "https://h:99999/", "HTTP://H:1/?a=b#c", "http://a b/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		err := CheckTrackerURL(raw)
		if err != nil {
			if !errors.Is(err, ErrBadTrackerURL) {
				t.Fatalf("error does not match ErrBadTrackerURL: %v", err)
			}
			if len(err.Error()) > 4*maxShownURL+200 {
				t.Fatalf("%d-byte message", len(err.Error()))
			}
			return
		}
		u, perr := url.Parse(raw)
		if perr != nil {
			t.Fatalf("accepted %q that does not parse: %v", raw, perr)
		}
		if (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "udp") || u.Hostname() == "" ||
			(u.Scheme == "udp" && u.Port() == "") {
			t.Fatalf("accepted %q: scheme %q host %q port %q", raw, u.Scheme, u.Hostname(), u.Port())
		}
	})
}

// TestSeedCorpus keeps the committed seeds meaningful: seeds named "bad-*"
// must be rejected, "warn-*" accepted with a warning, all others accepted
// without one.
func TestSeedCorpus(t *testing.T) {
	for _, fz := range []string{"FuzzParse", "FuzzParseInfo", "FuzzParseMagnet", "FuzzCheckTrackerURL"} {
		for _, seed := range fuzzcorpus.Read(t, fz, 1) {
			val := string(seed.Data)
			var err error
			var warnings []error
			switch fz {
			case "FuzzParse":
				var tor *Torrent
				if tor, err = Parse([]byte(val)); err == nil {
					warnings = tor.Warnings
				}
			case "FuzzParseInfo":
				_, err = ParseInfo([]byte(val))
			case "FuzzCheckTrackerURL":
				err = CheckTrackerURL(val)
			default:
				_, err = ParseMagnet(val)
			}
			if bad := strings.HasPrefix(seed.Name, "bad-"); bad != (err != nil) {
				t.Errorf("%s/%s: err = %v", fz, seed.Name, err)
			}
			if warn := strings.HasPrefix(seed.Name, "warn-"); warn != (len(warnings) > 0) {
				t.Errorf("%s/%s: warnings = %v", fz, seed.Name, warnings)
			}
		}
	}
}
