package main

import (
	"bytes"
	"context"
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
	testenv.Require(t, "qbittorrent-nox")
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

[Preferences]
Connection\PortRangeMin=%d
WebUI\Address=127.0.0.1
WebUI\Port=%d
WebUI\LocalHostAuth=false
WebUI\CSRFProtection=false
WebUI\HostHeaderValidation=false
`, port, ip, port, webPort)
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
	testenv.WaitFor(t, time.Minute, "qbittorrent registered as a seeder", func() bool {
		s, err := l.tracker.ScrapeInfo(context.Background(), l.torrent.InfoHash)
		return err == nil && s.Complete >= 1
	})
	out := t.TempDir()
	p := startCoord(t, "download", l.info.Magnet().String(), "--out", out, "--listen", "127.0.0.61:0", "--progress", "none")
	if code := p.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	if err := l.payload.Verify(out); err != nil {
		t.Fatal(err)
	}
}
