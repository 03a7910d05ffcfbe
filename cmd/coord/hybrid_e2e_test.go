package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"flotilla/internal/lab"
	"flotilla/internal/testenv"
	"flotilla/metainfo"
)

// ltPython is the Python with Debian's python3-libtorrent (2.0: it makes
// hybrid v1+v2 torrents with BEP 47 pad files, the engine of qBittorrent).
const ltPython = "/usr/bin/python3"

// ltLab is opentracker plus a libtorrent seeder of a small multi-file
// torrent made by libtorrent in the given format.
type ltLab struct {
	data    string // directory holding tree/
	torrent string
	info    *metainfo.Torrent
}

// newLTLab writes tree/{a,b,c}.bin (sizes that are not multiples of the
// 32 KiB piece, so a hybrid gets pad files), makes the torrent and, with
// seed, starts opentracker and a libtorrent seeder.
func newLTLab(t *testing.T, format string, seed bool) *ltLab {
	t.Helper()
	testenv.Require(t, "opentracker", ltPython)
	if out, err := exec.Command(ltPython, "-c", "import libtorrent").CombinedOutput(); err != nil {
		testenv.Unavailable(t, "python3-libtorrent: %v %s", err, out)
	}
	ctx := context.Background()
	cl := &lab.Cleanup{}
	t.Cleanup(cl.Run)
	dir := t.TempDir()
	l := &ltLab{data: filepath.Join(dir, "data"), torrent: filepath.Join(dir, "t.torrent")}
	for i, size := range []int{100001, 70000, 5} {
		b := bytes.Repeat([]byte{byte(i + 1), byte(i * 7)}, size/2+1)[:size]
		p := filepath.Join(l.data, "tree", string(rune('a'+i))+".bin")
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script, _ := filepath.Abs(filepath.Join("testdata", "lt_seed.py"))
	mk := func(tracker, ip string, port int) *exec.Cmd {
		return exec.Command(ltPython, script, format, l.data, "tree", tracker, l.torrent, ip, strconv.Itoa(port))
	}
	if out, err := mk("http://127.0.0.1:1/announce", "", 0).CombinedOutput(); err != nil {
		t.Fatalf("making the torrent: %v\n%s", err, out)
	}
	raw, _ := os.ReadFile(l.torrent)
	var err error
	if l.info, err = metainfo.Parse(raw); err != nil || !seed {
		return l
	}
	ot, err := lab.StartOpentracker(ctx, cl, lab.Loopback("127.0.0.1"), filepath.Join(dir, "tracker"), l.info.InfoHash)
	if err != nil {
		t.Fatal(err)
	}
	h := lab.Loopback("127.0.0.50")
	port, err := h.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lab.StartProc(cl, "libtorrent", mk(ot.HTTPAnnounce, h.IP(), port), filepath.Join(dir, "lt.log")); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, time.Minute, "libtorrent registered as a seeder", func() bool {
		s, err := ot.ScrapeInfo(ctx, l.info.InfoHash)
		return err == nil && s.Complete >= 1
	})
	if l.info, err = metainfo.Load(l.torrent); err != nil {
		t.Fatal(err)
	}
	return l
}

// checkTree checks that out/tree holds exactly a.bin, b.bin and c.bin as
// seeded: byte-identical, and no pad file.
func (l *ltLab) checkTree(t *testing.T, out string) {
	t.Helper()
	var got []string
	filepath.WalkDir(filepath.Join(out, "tree"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			got = append(got, strings.TrimPrefix(p, out+"/"))
		}
		return err
	})
	if strings.Join(got, " ") != "tree/a.bin tree/b.bin tree/c.bin" {
		t.Fatalf("files on disk: %v (want the three data files, no pad files)", got)
	}
	for _, f := range got {
		want, _ := os.ReadFile(filepath.Join(l.data, f))
		have, err := os.ReadFile(filepath.Join(out, f))
		if err != nil || !bytes.Equal(want, have) {
			t.Fatalf("%s differs from the seeder's: %v", f, err)
		}
	}
}

// TestHybridFromLibtorrent: a hybrid v1+v2 torrent made by libtorrent (pad
// files between files and at the end) downloads over v1 from a libtorrent
// seeder, byte-identical, with no pad file written.
func TestHybridFromLibtorrent(t *testing.T) {
	l := newLTLab(t, "hybrid", true)
	pads := 0
	for _, f := range l.info.Info.Files {
		if f.IsPad() {
			pads++
		}
	}
	if pads == 0 {
		t.Fatalf("libtorrent's hybrid has no pad files: %+v", l.info.Info.Files)
	}
	out := t.TempDir()
	p := startCoord(t, "download", l.torrent, "--out", out, "--listen", "127.0.0.51:0", "--progress", "none")
	if code := p.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	l.checkTree(t, out)
}

// TestMagnetFromLibtorrent: the info of a hybrid torrent comes from a
// libtorrent seeder (qBittorrent's engine) over ut_metadata.
func TestMagnetFromLibtorrent(t *testing.T) {
	l := newLTLab(t, "hybrid", true)
	out := t.TempDir()
	p := startCoord(t, "download", l.info.Magnet().String(), "--out", out, "--listen", "127.0.0.52:0", "--progress", "none")
	if code := p.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	os.Remove(filepath.Join(out, "tree.torrent"))
	l.checkTree(t, out)
}

// TestV2OnlyFromLibtorrentIsRefused: a v2-only torrent gets the clear error
// at parse time, saying what to do.
func TestV2OnlyFromLibtorrentIsRefused(t *testing.T) {
	l := newLTLab(t, "v2", false)
	if _, err := metainfo.Load(l.torrent); !errors.Is(err, metainfo.ErrV2Only) {
		t.Fatalf("Load(v2-only) = %v", err)
	}
	p := startCoord(t, "download", l.torrent, "--out", t.TempDir(), "--progress", "none")
	if code := p.wait(t, time.Minute); code != 1 || !strings.Contains(p.out.String(), "v2-only") ||
		!strings.Contains(p.out.String(), "use a v1 or hybrid torrent") {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
}

// TestTransmissionCreateTorrent: a multi-file torrent made by
// transmission-create (3.00 makes v1 torrents only: no hybrid, no pad
// files), seeded by aria2c, downloads byte-identical.
func TestTransmissionCreateTorrent(t *testing.T) {
	testenv.Require(t, "transmission-create", "opentracker", "aria2c")
	ctx := context.Background()
	cl := &lab.Cleanup{}
	t.Cleanup(cl.Run)
	dir := t.TempDir()
	p, err := lab.WritePayload(filepath.Join(dir, "data"), lab.PayloadSpec{Name: "tree", Seed: 29, Files: []lab.FileSpec{
		{Path: "a.bin", Size: 100001}, {Path: "sub/b.bin", Size: 70000}, {Path: "c.bin", Size: 5},
	}})
	if err != nil {
		t.Fatal(err)
	}
	create := func(tracker, out string) *metainfo.Torrent {
		if b, err := exec.Command("transmission-create", "-s", "32", "-t", tracker, "-o", out, p.Path).CombinedOutput(); err != nil {
			t.Fatalf("transmission-create: %v\n%s", err, b)
		}
		tor, err := metainfo.Load(out)
		if err != nil {
			t.Fatal(err)
		}
		return tor
	}
	probe := create("http://127.0.0.1:1/announce", filepath.Join(dir, "probe.torrent"))
	ot, err := lab.StartOpentracker(ctx, cl, lab.Loopback("127.0.0.1"), filepath.Join(dir, "tracker"), probe.InfoHash)
	if err != nil {
		t.Fatal(err)
	}
	torPath := filepath.Join(dir, "t.torrent")
	tor := create(ot.HTTPAnnounce, torPath)
	h := lab.Loopback("127.0.0.53")
	port, err := h.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lab.StartProc(cl, "aria2c", exec.Command("aria2c", lab.Aria2SeedArgs(h.IP(), port, filepath.Dir(p.Path), torPath)...),
		filepath.Join(dir, "aria2c.log")); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, time.Minute, "aria2c registered as a seeder", func() bool {
		s, err := ot.ScrapeInfo(ctx, tor.InfoHash)
		return err == nil && s.Complete >= 1
	})
	out := t.TempDir()
	c := startCoord(t, "download", torPath, "--out", out, "--listen", "127.0.0.54:0", "--progress", "none")
	if code := c.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("exit %d:\n%s", code, c.out.String())
	}
	if err := p.Verify(out); err != nil {
		t.Fatal(err)
	}
}
