package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"flotilla/internal/lab"
	"flotilla/internal/testenv"
)

// transmissionRPC is a client of transmission-daemon's JSON-RPC, which
// answers 409 with the session id to send first.
type transmissionRPC struct {
	url     string
	session string
}

// call runs method with args and decodes the reply's arguments into out
// (if not nil).
func (c *transmissionRPC) call(method string, args, out any) error {
	b, err := c.post(method, args)
	if err != nil {
		return err
	}
	var reply struct {
		Result    string          `json:"result"`
		Arguments json.RawMessage `json:"arguments"`
	}
	if err := json.Unmarshal(b, &reply); err != nil {
		return fmt.Errorf("%s: %q", method, b)
	}
	if reply.Result != "success" {
		return fmt.Errorf("%s: %s", method, reply.Result)
	}
	if out != nil {
		return json.Unmarshal(reply.Arguments, out)
	}
	return nil
}

// post sends one request and returns the reply's body, undecoded (the
// latency figures count what coord's count: the request and reading
// the whole reply).
func (c *transmissionRPC) post(method string, args any) ([]byte, error) {
	body, err := json.Marshal(map[string]any{"method": method, "arguments": args})
	if err != nil {
		return nil, err
	}
	for range 2 {
		req, _ := http.NewRequest("POST", c.url, bytes.NewReader(body))
		req.Header.Set("X-Transmission-Session-Id", c.session)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusConflict {
			c.session = resp.Header.Get("X-Transmission-Session-Id")
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s: %d %q", method, resp.StatusCode, b)
		}
		return b, nil
	}
	return nil, fmt.Errorf("%s: no session id", method)
}

// transmissionFigures are transmission-daemon's figures on the seeding
// torrents, measured as coord serve's are.
type transmissionFigures struct {
	peakRSS, idleCPU             float64 // MiB, % of one core
	listP99, showP99, sessionP99 time.Duration
	seedingAfter                 time.Duration
	torrents                     int
}

// benchTransmission starts transmission-daemon (RPC on loopback, no
// authentication, no DHT/LPD/PEX/port mapping), adds the seeding torrents
// with their data in place (dataDir(t) holds t's file) and measures, once
// every torrent seeds: its peak RSS, its idle CPU over 20 s, and the p99
// latency of a list (torrent-get of every id with a list's fields), a show
// (torrent-get of one id with its files, peers and trackers) and
// session-get.
func benchTransmission(b *testing.B, cl *lab.Cleanup, dir string, seeds []benchTorrent, dataDir func(benchTorrent) string) transmissionFigures {
	b.Helper()
	testenv.Require(b, "transmission-daemon")
	cfg := filepath.Join(dir, "transmission")
	if err := os.MkdirAll(cfg, 0o755); err != nil {
		b.Fatal(err)
	}
	rpcPort, peerPort := testenv.FreePort(b, "127.0.0.1"), testenv.FreePort(b, "127.0.0.1")
	settings := fmt.Sprintf(`{"dht-enabled": false, "lpd-enabled": false, "pex-enabled": false, "utp-enabled": false,
 "port-forwarding-enabled": false, "blocklist-enabled": false, "rpc-enabled": true, "rpc-bind-address": "127.0.0.1",
 "rpc-port": %d, "rpc-authentication-required": false, "rpc-whitelist-enabled": false, "rpc-host-whitelist-enabled": false,
 "peer-port": %d, "bind-address-ipv4": "127.0.0.1", "ratio-limit-enabled": false, "idle-seeding-limit-enabled": false,
 "download-queue-enabled": false, "seed-queue-enabled": false, "message-level": 1}
`, rpcPort, peerPort)
	if err := os.WriteFile(filepath.Join(cfg, "settings.json"), []byte(settings), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command("transmission-daemon", "-f", "-g", cfg, "-T", "-w", filepath.Join(dir, "transmission-data"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p, err := lab.StartProc(cl, "transmission-daemon", cmd, filepath.Join(dir, "transmission.log"))
	if err != nil {
		b.Fatal(err)
	}
	pid := cmd.Process.Pid
	rpc := &transmissionRPC{url: fmt.Sprintf("http://127.0.0.1:%d/transmission/rpc", rpcPort)}
	testenv.WaitFor(b, 30*time.Second, "transmission-daemon's RPC", func() bool { return rpc.call("session-get", nil, nil) == nil })

	start := time.Now()
	var ids []int
	for _, t := range seeds {
		var added struct {
			Added *struct {
				ID int `json:"id"`
			} `json:"torrent-added"`
		}
		err := rpc.call("torrent-add", map[string]any{"metainfo": base64.StdEncoding.EncodeToString(t.raw), "download-dir": dataDir(t)}, &added)
		if err != nil || added.Added == nil {
			b.Fatalf("transmission torrent-add %s: %v", t.name, err)
		}
		ids = append(ids, added.Added.ID)
	}
	seeding := func() int {
		var got struct {
			Torrents []struct {
				Status int `json:"status"`
			} `json:"torrents"`
		}
		if err := rpc.call("torrent-get", map[string]any{"fields": []string{"id", "status"}}, &got); err != nil {
			b.Fatal(err)
		}
		n := 0
		for _, t := range got.Torrents {
			if t.Status == 6 { // TR_STATUS_SEED
				n++
			}
		}
		return n
	}
	testenv.WaitFor(b, 10*time.Minute, "transmission seeding every torrent", func() bool { return seeding() == len(seeds) })
	f := transmissionFigures{torrents: len(seeds), seedingAfter: time.Since(start)}

	listFields := []string{"id", "name", "hashString", "status", "error", "errorString", "totalSize", "sizeWhenDone", "leftUntilDone",
		"percentDone", "rateDownload", "rateUpload", "uploadedEver", "downloadedEver", "uploadRatio", "eta", "peersConnected",
		"addedDate", "doneDate", "downloadDir"}
	showFields := append(listFields, "files", "fileStats", "peers", "trackerStats", "pieceCount", "pieceSize")
	f.listP99 = p99(200, func() {
		if _, err := rpc.post("torrent-get", map[string]any{"ids": ids, "fields": listFields}); err != nil {
			b.Fatal(err)
		}
	})
	f.showP99 = p99(200, func() {
		if _, err := rpc.post("torrent-get", map[string]any{"ids": []int{ids[rand.IntN(len(ids))]}, "fields": showFields}); err != nil {
			b.Fatal(err)
		}
	})
	f.sessionP99 = p99(200, func() {
		if _, err := rpc.post("session-get", nil); err != nil {
			b.Fatal(err)
		}
	})
	time.Sleep(5 * time.Second) // the measurements' own work settles before idle CPU
	t0, c0 := time.Now(), cpuTicks(b, pid)
	time.Sleep(20 * time.Second)
	f.idleCPU = (cpuTicks(b, pid) - c0) / 100 / time.Since(t0).Seconds() * 100
	f.peakRSS = procStatus(b, pid, "VmHWM") / 1024
	p.Stop()
	return f
}

// logSideBySide prints coord serve's and transmission-daemon's figures
// as a table.
func logSideBySide(b *testing.B, coord, tr transmissionFigures) {
	b.Helper()
	ms := func(d time.Duration) string {
		return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) + " ms"
	}
	b.Logf("\n%-22s %14s %20s\n%-22s %14d %20d\n%-22s %14s %20s\n%-22s %14s %20s\n%-22s %14s %20s\n%-22s %14s %20s\n%-22s %14s %20s",
		"", "coord serve", "transmission-daemon",
		"torrents seeding", coord.torrents, tr.torrents,
		"first N seeding after", fmt.Sprintf("%.1f s", coord.seedingAfter.Seconds()), fmt.Sprintf("%.1f s", tr.seedingAfter.Seconds()),
		"peak RSS", fmt.Sprintf("%.0f MiB", coord.peakRSS), fmt.Sprintf("%.0f MiB", tr.peakRSS),
		"idle CPU", fmt.Sprintf("%.1f %%", coord.idleCPU), fmt.Sprintf("%.1f %%", tr.idleCPU),
		"list p99 (idle)", ms(coord.listP99), ms(tr.listP99),
		"show p99 (idle)", ms(coord.showP99), ms(tr.showP99))
}
