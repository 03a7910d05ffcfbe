package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"flotilla/internal/lab"
	"flotilla/internal/testenv"
)

// startQbittorrent runs qbittorrent-nox (DHT, LSD and PEX off, the Web UI
// on localhost without login) listening on ip:port, and adds torrentPath
// to it saving into dataDir through its Web API (seeding when the data is
// there).
func startQbittorrent(t *testing.T, cl *lab.Cleanup, ip string, port int, torrentPath, dataDir string) {
	t.Helper()
	startQbittorrentWith(t, cl, ip, port, torrentPath, dataDir, false)
}

// qbtEncryptionRequire is qBittorrent's "Require encryption"
// (Session\Encryption in its config, "encryption" in its Web API's
// preferences: 0 allow, 1 require, 2 disable): libtorrent then takes and
// makes only encrypted connections (RC4, forced).
const qbtEncryptionRequire = 1

// startQbittorrentWith is startQbittorrent, with encryption required
// when requireCrypto is set (checked through the Web API before the
// torrent is added).
func startQbittorrentWith(t *testing.T, cl *lab.Cleanup, ip string, port int, torrentPath, dataDir string, requireCrypto bool) {
	t.Helper()
	testenv.Require(t, "qbittorrent-nox")
	encryption := 0
	if requireCrypto {
		encryption = qbtEncryptionRequire
	}
	profile := t.TempDir()
	webPort := testenv.FreePort(t, "127.0.0.1")
	conf := fmt.Sprintf(`[LegalNotice]
Accepted=true

[BitTorrent]
Session\Port=%d
Session\InterfaceAddress=%s
Session\DHTEnabled=false
Session\LSDEnabled=false
Session\PeXEnabled=false
Session\AddTrackersEnabled=false
Session\Encryption=%d

[Preferences]
Connection\PortRangeMin=%d
WebUI\Address=127.0.0.1
WebUI\Port=%d
WebUI\LocalHostAuth=false
WebUI\CSRFProtection=false
WebUI\HostHeaderValidation=false
`, port, ip, encryption, port, webPort)
	cfgDir := filepath.Join(profile, "qBittorrent", "config")
	os.MkdirAll(cfgDir, 0o755)
	if err := os.WriteFile(filepath.Join(cfgDir, "qBittorrent.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("qbittorrent-nox", "--profile="+profile, fmt.Sprintf("--webui-port=%d", webPort))
	if _, err := lab.StartProc(cl, "qbittorrent", cmd, filepath.Join(profile, "qbt.log")); err != nil {
		t.Fatal(err)
	}
	api := fmt.Sprintf("http://127.0.0.1:%d/api/v2", webPort)
	testenv.WaitFor(t, 30*time.Second, "qbittorrent-nox's Web API", func() bool {
		resp, err := http.Get(api + "/app/version")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	if got := qbtPreference(t, api, "encryption"); got != float64(encryption) {
		t.Fatalf("qbittorrent-nox's encryption preference is %v, want %d", got, encryption)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("torrents", filepath.Base(torrentPath))
	b, err := os.ReadFile(torrentPath)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(b)
	mw.WriteField("savepath", dataDir)
	mw.Close()
	resp, err := http.Post(api+"/torrents/add", mw.FormDataContentType(), &body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("qbittorrent torrents/add: %v %v", err, resp)
	}
	resp.Body.Close()
}

// TestMagnetFromQbittorrent: the torrent's info comes from a
// qbittorrent-nox seeder over ut_metadata.
func TestMagnetFromQbittorrent(t *testing.T) {
	l := newSwarmLab(t, lab.PayloadSpec{Name: "payload.bin", Seed: 23, Size: 3<<20 + 77}, 1<<16, 0)
	cl := &lab.Cleanup{}
	t.Cleanup(cl.Run)
	h := lab.Loopback("127.0.0.60")
	port, err := h.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	startQbittorrent(t, cl, h.IP(), port, l.torrent.Path, filepath.Dir(l.payload.Path))
	l.waitSeeder(t, "qbittorrent", time.Minute)
	out := t.TempDir()
	p := startCoord(t, "download", l.info.Magnet().String(), "--out", out, "--listen", "127.0.0.61:0", "--progress", "none")
	if code := p.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	if err := l.payload.Verify(out); err != nil {
		t.Fatal(err)
	}
}

// qbtPreference reads one of qbittorrent-nox's preferences.
func qbtPreference(t *testing.T, api, name string) any {
	t.Helper()
	resp, err := http.Get(api + "/app/preferences")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var prefs map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&prefs); err != nil {
		t.Fatalf("qbittorrent preferences: %v", err)
	}
	return prefs[name]
}

// TestDownloadEncryptedFromQbittorrent: coord download --encryption
// require from a qbittorrent-nox seeder that requires encryption.
func TestDownloadEncryptedFromQbittorrent(t *testing.T) {
	l := newSwarmLab(t, lab.PayloadSpec{Name: "payload.bin", Seed: 41, Size: 6<<20 + 321}, 1<<18, 0)
	cl := &lab.Cleanup{}
	t.Cleanup(cl.Run)
	h := lab.Loopback("127.0.0.62")
	port, err := h.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	startQbittorrentWith(t, cl, h.IP(), port, l.torrent.Path, filepath.Dir(l.payload.Path), true)
	l.waitSeeder(t, "qbittorrent", time.Minute)
	out := t.TempDir()
	p := startCoord(t, "download", l.torrent.Path, "--out", out, "--listen", "127.0.0.63:0", "--progress", "log",
		"--encryption", "require")
	if code := p.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	if err := l.payload.Verify(out); err != nil {
		t.Fatal(err)
	}
}

// TestQbittorrentDownloadsEncryptedFromCoordSeed: qbittorrent-nox
// requiring encryption downloads from coord seed --encryption require.
func TestQbittorrentDownloadsEncryptedFromCoordSeed(t *testing.T) {
	l := newSwarmLab(t, lab.PayloadSpec{Name: "payload.bin", Seed: 42, Size: 6<<20 + 654}, 1<<18, 0)
	s := l.seedWithCoord(t, "127.0.0.64", "--encryption", "require")
	cl := &lab.Cleanup{}
	t.Cleanup(cl.Run)
	h := lab.Loopback("127.0.0.65")
	port, err := h.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	startQbittorrentWith(t, cl, h.IP(), port, l.torrent.Path, out, true)
	testenv.WaitFor(t, 2*time.Minute, "qbittorrent's copy complete and identical", func() bool {
		select {
		case <-s.done:
			t.Fatalf("coord seed exited:\n%s", s.out.String())
		default:
		}
		return l.payload.Complete(out) && l.payload.Verify(out) == nil
	})
}
