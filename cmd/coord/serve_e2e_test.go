package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"flotilla/internal/lab"
	"flotilla/internal/testenv"
	"flotilla/metainfo"
	"flotilla/service"
)

const serveToken = "e2e-token-1234"

// serveProc is a running coord serve and its API.
type serveProc struct {
	*coordProc
	api string // http://HOST:PORT/api/v1
}

var apiLine = regexp.MustCompile(`API on (http://[^ ]+)/api/v1/`)

// startServe starts coord serve with its state and data under dir.
func startServe(t *testing.T, dir string, extra ...string) *serveProc {
	t.Helper()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(serveToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--state", filepath.Join(dir, "state"), "--data", filepath.Join(dir, "data"),
		"--http", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--api-token-file", tokenFile}, extra...)
	p := startCoord(t, args...)
	var m []string
	testenv.WaitFor(t, 30*time.Second, "coord serve's API address", func() bool {
		select {
		case <-p.done:
			t.Fatalf("coord serve exited:\n%s", p.out.String())
		default:
		}
		m = apiLine.FindStringSubmatch(p.out.String())
		return m != nil
	})
	return &serveProc{coordProc: p, api: m[1] + "/api/v1"}
}

// do sends an API request with the token and decodes the JSON answer
// into out (if not nil); it returns the status.
func (s *serveProc) do(t *testing.T, method, path string, body []byte, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, s.api+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+serveToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", method, path, err, s.out.String())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %q: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

func (s *serveProc) show(t *testing.T, id string) service.JobDetail {
	t.Helper()
	var d service.JobDetail
	if code := s.do(t, "GET", "/torrents/"+id, nil, &d); code != 200 {
		t.Fatalf("show %s: %d\n%s", id, code, s.out.String())
	}
	return d
}

func (s *serveProc) add(t *testing.T, torrentPath, query string) service.JobInfo {
	t.Helper()
	b, err := os.ReadFile(torrentPath)
	if err != nil {
		t.Fatal(err)
	}
	var in service.JobInfo
	if code := s.do(t, "POST", "/torrents"+query, b, &in); code != http.StatusCreated {
		t.Fatalf("add: %d %+v\n%s", code, in, s.out.String())
	}
	return in
}

func (s *serveProc) waitState(t *testing.T, id string, timeout time.Duration, states ...string) service.JobDetail {
	t.Helper()
	var d service.JobDetail
	testenv.WaitFor(t, timeout, fmt.Sprintf("job %s %v", id, states), func() bool {
		d = s.show(t, id)
		for _, st := range states {
			if d.State == st {
				return true
			}
		}
		return false
	})
	return d
}

// metric scrapes /metrics (which must parse) and returns the value of
// the metric name for job id.
func (s *serveProc) metric(t *testing.T, name, id string) float64 {
	t.Helper()
	return s.metricWith(t, name, map[string]string{"id": id})
}

// metricWith scrapes /metrics (which must parse) and returns the value of
// the first sample of name with the labels given (a histogram's: its
// sample count).
func (s *serveProc) metricWith(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	req, _ := http.NewRequest("GET", strings.TrimSuffix(s.api, "/api/v1")+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+serveToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	if f := fams[name]; f != nil {
	metric:
		for _, m := range f.Metric {
			found := 0
			for _, l := range m.Label {
				if v, ok := labels[l.GetName()]; ok {
					if v != l.GetValue() {
						continue metric
					}
					found++
				}
			}
			if found == len(labels) {
				return m.GetGauge().GetValue() + m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	t.Fatalf("/metrics has no %s%v", name, labels)
	return 0
}

// stop sends SIGTERM and waits for exit 0.
func (s *serveProc) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	if code := s.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("coord serve after SIGTERM: exit %d\n%s", code, s.out.String())
	}
}

// TestServeDownloadsAndManagesJobs: a torrent added to a real coord serve
// downloads byte-identical from aria2c seeders; list, show, pause, resume
// and remove (keeping, then deleting the data) work over the API.
func TestServeDownloadsAndManagesJobs(t *testing.T) {
	l := newSwarmLab(t, lab.PayloadSpec{Name: "payload.bin", Seed: 31, Size: 16<<20 + 777}, 1<<18, 2)
	dir := t.TempDir()
	s := startServe(t, dir)
	in := s.add(t, l.torrent.Path, "?seed=false")
	d := s.waitState(t, in.ID, 2*time.Minute, service.StateDone, service.StateFailed)
	if d.State != service.StateDone {
		t.Fatalf("job %s: %+v\n%s", in.ID, d.JobInfo, s.out.String())
	}
	if err := l.payload.Verify(d.DataDir); err != nil {
		t.Fatalf("%v\n%s", err, s.out.String())
	}
	if len(d.Files) != 1 || d.Files[0].Path != "payload.bin" || len(d.Trackers) != 1 || d.Progress != 1 {
		t.Fatalf("show: %+v", d)
	}
	var list struct{ Torrents []service.JobInfo }
	if code := s.do(t, "GET", "/torrents", nil, &list); code != 200 || len(list.Torrents) != 1 || list.Torrents[0].ID != in.ID {
		t.Fatalf("list: %d %+v", code, list)
	}
	// A done job resumes as a seeder when its limits allow it.
	if code := s.do(t, "PUT", "/torrents/"+in.ID+"/limits", []byte(`{"seed": true}`), nil); code != 200 {
		t.Fatalf("limits: %d", code)
	}
	s.waitState(t, in.ID, 30*time.Second, service.StateSeeding)
	if code := s.do(t, "POST", "/torrents/"+in.ID+"/pause", nil, nil); code != 200 {
		t.Fatalf("pause: %d", code)
	}
	s.waitState(t, in.ID, 30*time.Second, service.StatePaused)
	if code := s.do(t, "POST", "/torrents/"+in.ID+"/resume", nil, nil); code != 200 {
		t.Fatalf("resume: %d", code)
	}
	s.waitState(t, in.ID, 30*time.Second, service.StateSeeding)

	if code := s.do(t, "DELETE", "/torrents/"+in.ID, nil, nil); code != 200 {
		t.Fatalf("remove: %d", code)
	}
	if err := l.payload.Verify(d.DataDir); err != nil {
		t.Fatalf("remove without delete_data: %v", err)
	}
	in = s.add(t, l.torrent.Path, "?seed=false")
	s.waitState(t, in.ID, time.Minute, service.StateDone)
	if code := s.do(t, "DELETE", "/torrents/"+in.ID+"?delete_data=true", nil, nil); code != 200 {
		t.Fatalf("remove with delete_data: %d", code)
	}
	if _, err := os.Stat(d.DataDir); !os.IsNotExist(err) {
		t.Fatalf("delete_data left %s: %v", d.DataDir, err)
	}
	s.stop(t)
}

// TestServeResumesAfterRestartAndKill: SIGTERM mid-download tells the
// tracker "stopped" and exits 0; kill -9 later loses nothing verified;
// each time the restarted daemon resumes the job, and the pieces on disk
// are not fetched again.
func TestServeResumesAfterRestartAndKill(t *testing.T) {
	l := newSwarmLab(t, lab.PayloadSpec{Name: "payload.bin", Seed: 37, Size: 40 << 20}, 1<<18, 1, "--max-upload-limit=4M")
	ctx := context.Background()
	dir := t.TempDir()
	n := l.info.Info.NumPieces()
	s := startServe(t, dir)
	in := s.add(t, l.torrent.Path, "?seed=true&seed_ratio=0")
	atLeast := func(s *serveProc, pieces int) {
		testenv.WaitFor(t, time.Minute, fmt.Sprintf("%d pieces", pieces), func() bool {
			return s.show(t, in.ID).PiecesDone >= pieces
		})
	}
	atLeast(s, n/5)
	s.stop(t)
	sc, err := l.tracker.ScrapeInfo(ctx, l.torrent.InfoHash)
	if err != nil || sc.Incomplete != 0 {
		t.Fatalf("after SIGTERM the tracker lists %d leechers (%v): no \"stopped\"?", sc.Incomplete, err)
	}
	dataDir := filepath.Join(dir, "data", in.ID)
	kept := haveCount(t, l.info, dataDir)
	if kept < n/5 || kept == n {
		t.Fatalf("after SIGTERM the record holds %d of %d pieces", kept, n)
	}

	s = startServe(t, dir)
	if d := s.show(t, in.ID); d.PiecesDone < kept {
		t.Fatalf("restarted: %d pieces done, %d were kept", d.PiecesDone, kept)
	}
	atLeast(s, kept+1)
	before := s.metric(t, "flotilla_torrent_done_bytes", in.ID)
	if before <= 0 {
		t.Fatalf("/metrics: done bytes %v with %d pieces on disk", before, kept+1)
	}
	testenv.WaitFor(t, time.Minute, "/metrics' done bytes to move while downloading", func() bool {
		return s.metric(t, "flotilla_torrent_done_bytes", in.ID) > before
	})
	checkLiveFigures(t, s, in.ID, l.tracker.HTTPAnnounce)
	atLeast(s, kept+n/5)
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.wait(t, 10*time.Second)
	kept = haveCount(t, l.info, dataDir)
	if kept == n {
		t.Fatalf("kill -9 landed after the download completed")
	}

	s = startServe(t, dir)
	d := s.waitState(t, in.ID, 2*time.Minute, service.StateSeeding, service.StateFailed)
	if d.State != service.StateSeeding {
		t.Fatalf("after kill -9: %+v\n%s", d.JobInfo, s.out.String())
	}
	if err := l.payload.Verify(dataDir); err != nil {
		t.Fatal(err)
	}
	var got int64
	for _, w := range d.Workers {
		got += w.Downloaded
	}
	missing := l.info.Info.Length - int64(kept)*l.info.Info.PieceLength
	if got > missing+8*l.info.Info.PieceLength {
		t.Fatalf("after kill -9 the job received %d bytes; only %d were missing (%d pieces kept)", got, missing, kept)
	}
	s.stop(t)
}

// checkLiveFigures: while job id downloads, its disk writes and syncs are
// timed in /metrics, its tracker (url) answered with a latency the
// watchdog measured and gave a peer list, in show and in /metrics.
func checkLiveFigures(t *testing.T, s *serveProc, id, url string) {
	t.Helper()
	for _, op := range []string{"write", "sync"} {
		if v := s.metricWith(t, "flotilla_disk_write_seconds", map[string]string{"id": id, "op": op}); v <= 0 {
			t.Errorf("/metrics: %v disk %ss timed while downloading", v, op)
		}
	}
	var ti service.TrackerInfo
	testenv.WaitFor(t, time.Minute, "the tracker's live report", func() bool {
		ti = s.show(t, id).Trackers[0]
		return ti.Latency != nil && ti.Latency.Answers > 0 && len(ti.Peers) > 0
	})
	if ti.URL != url || ti.LastAnnounce.IsZero() || ti.Interval <= 0 || ti.PeersTotal < len(ti.Peers) || ti.Latency.Max <= 0 {
		t.Errorf("show's tracker %+v", ti)
	}
	tr := map[string]string{"id": id, "tracker": url}
	if v := s.metricWith(t, "flotilla_tracker_answers_total", tr); v <= 0 {
		t.Errorf("/metrics: tracker answers %v", v)
	}
	if v := s.metricWith(t, "flotilla_watchdog_fulfilled_total", map[string]string{"kind": "tracker.announce"}); v <= 0 {
		t.Errorf("/metrics: watchdog fulfilled announces %v", v)
	}
	s.metricWith(t, "flotilla_lease_returned_pieces_total", map[string]string{"id": id, "reason": "missed"})
}

// TestServeAPIGuards: the real daemon refuses a missing or wrong token
// (401), a foreign Host (421), a torrent whose path escapes the data
// directory (400, nothing written), an oversized upload (413) and a magnet
// link with nobody to fetch its info from (400); the probes answer without a token.
func TestServeAPIGuards(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, dir, "--max-upload", "1048576")
	get := func(path, host, token string) int {
		req, _ := http.NewRequest("GET", path, nil)
		if host != "" {
			req.Host = host
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		path, host, token string
		want              int
	}{
		{s.api + "/torrents", "", "", 401},
		{s.api + "/torrents", "", "wrong", 401},
		{s.api + "/torrents", "", serveToken, 200},
		{s.api + "/torrents", "rebind.example.com", serveToken, 421},
		{strings.TrimSuffix(s.api, "/api/v1") + "/healthz", "", "", 200},
		{strings.TrimSuffix(s.api, "/api/v1") + "/readyz", "", "", 200},
	} {
		if got := get(c.path, c.host, c.token); got != c.want {
			t.Errorf("GET %s (Host %q, token %q): %d, want %d", c.path, c.host, c.token, got, c.want)
		}
	}
	escape := "d8:announce27:http://127.0.0.1:1/announce4:infod5:filesld6:lengthi10e4:pathl2:..4:evileee4:name1:x12:piece lengthi16384e6:pieces20:" +
		"xxxxxxxxxxxxxxxxxxxxee"
	var e struct{ Error string }
	if code := s.do(t, "POST", "/torrents", []byte(escape), &e); code != 400 {
		t.Fatalf("path escape: %d %q", code, e.Error)
	}
	for _, d := range []string{filepath.Join(dir, "state", "torrents"), filepath.Join(dir, "data")} {
		if ents, _ := os.ReadDir(d); len(ents) != 0 {
			t.Fatalf("%s has %d entries after a refused torrent", d, len(ents))
		}
	}
	if code := s.do(t, "POST", "/torrents", make([]byte, 2<<20), &e); code != 413 {
		t.Fatalf("oversized upload: %d %q", code, e.Error)
	}
	// A magnet link with no tracker and no peer: nobody to fetch its info from.
	if code := s.do(t, "POST", "/torrents", []byte("magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567"), &e); code != 400 {
		t.Fatalf("magnet: %d %q", code, e.Error)
	}
	s.stop(t)
}

// TestServeTwoSwarmsAtOnce: two torrents from two swarms (each its own
// opentracker and aria2c seeder) download at the same time through one
// daemon, on its one peer listener, both byte-identical.
func TestServeTwoSwarmsAtOnce(t *testing.T) {
	a := newSwarmLab(t, lab.PayloadSpec{Name: "a.bin", Seed: 41, Size: 20 << 20}, 1<<18, 1, "--max-upload-limit=4M")
	b := newSwarmLab(t, lab.PayloadSpec{Name: "b.bin", Seed: 43, Size: 20<<20 + 99}, 1<<18, 1, "--max-upload-limit=4M")
	s := startServe(t, t.TempDir(), "--max-active", "2", "--seed=false")
	ja := s.add(t, a.torrent.Path, "")
	jb := s.add(t, b.torrent.Path, "")
	testenv.WaitFor(t, time.Minute, "both jobs downloading with pieces done", func() bool {
		da, db := s.show(t, ja.ID), s.show(t, jb.ID)
		return da.State == service.StateDownloading && db.State == service.StateDownloading && da.PiecesDone > 0 && db.PiecesDone > 0
	})
	for _, c := range []struct {
		id string
		l  *swarmLab
	}{{ja.ID, a}, {jb.ID, b}} {
		d := s.waitState(t, c.id, 2*time.Minute, service.StateDone, service.StateFailed)
		if d.State != service.StateDone {
			t.Fatalf("job %s: %+v\n%s", c.id, d.JobInfo, s.out.String())
		}
		if err := c.l.payload.Verify(d.DataDir); err != nil {
			t.Fatalf("job %s: %v", c.id, err)
		}
	}
	s.stop(t)
}

// TestServeCLI: coord add, ls, show, pause, resume and rm drive a real
// coord serve with the token from the environment.
func TestServeCLI(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, dir)
	data := bytes.Repeat([]byte("flotilla"), 1<<14)
	tb, err := metainfo.Build("cli.bin", []metainfo.File{{Length: int64(len(data))}}, 1<<15,
		[][]string{{"http://127.0.0.1:1/announce"}}, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tpath := filepath.Join(dir, "cli.torrent")
	if err := os.WriteFile(tpath, tb, 0o644); err != nil {
		t.Fatal(err)
	}
	server := strings.TrimSuffix(s.api, "/api/v1")
	cli := func(wantCode int, args ...string) string {
		t.Helper()
		cmd := exec.Command(coordBinary(t), append(args, "--server", server)...)
		cmd.Env = append(os.Environ(), tokenEnv+"="+serveToken)
		out, err := cmd.Output()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != wantCode {
			t.Fatalf("coord %v: exit %d, want %d; stdout:\n%s", args, code, wantCode, out)
		}
		return string(out)
	}
	id := strings.TrimSpace(cli(0, "add", tpath, "--paused", "--seed-ratio", "5"))
	if len(id) != 12 {
		t.Fatalf("coord add printed %q, want the job id", id)
	}
	if out := cli(0, "ls"); !strings.Contains(out, id) || !strings.Contains(out, "paused") || !strings.Contains(out, "cli.bin") {
		t.Fatalf("coord ls:\n%s", out)
	}
	var list []service.JobInfo
	if err := json.Unmarshal([]byte(cli(0, "ls", "--json")), &list); err != nil || len(list) != 1 || list[0].Limits.Ratio != 5 {
		t.Fatalf("coord ls --json: %+v %v", list, err)
	}
	if out := cli(0, "resume", id); !strings.Contains(out, id) {
		t.Fatalf("coord resume: %s", out)
	}
	s.waitState(t, id, 30*time.Second, service.StateDownloading)
	if out := cli(0, "show", id); !strings.Contains(out, "cli.bin") || !strings.Contains(out, "http://127.0.0.1:1/announce") {
		t.Fatalf("coord show:\n%s", out)
	}
	if out := cli(0, "trackers", id); !strings.Contains(out, "http://127.0.0.1:1/announce") || !strings.Contains(out, "TIER") {
		t.Fatalf("coord trackers:\n%s", out)
	}
	cli(0, "pause", id)
	cli(1, "show", "000000000000")
	cli(0, "rm", "--delete-data", id)
	if out := cli(0, "ls", "--json"); strings.TrimSpace(out) != "[]" && strings.TrimSpace(out) != "null" {
		t.Fatalf("after rm: %s", out)
	}
	cmd := exec.Command(coordBinary(t), "ls", "--server", server)
	cmd.Env = append(os.Environ(), tokenEnv+"=wrong")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "token") {
		t.Fatalf("coord ls with a wrong token: %v\n%s", err, out)
	}
	s.stop(t)
}
