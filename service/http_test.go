package service

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"flotilla/coordinator"
	"flotilla/dht"
	"flotilla/internal/testenv"
	"flotilla/metainfo"
	"flotilla/swarm"
	"flotilla/tracker"
)

const testToken = "s3cret-token"

// newTestAPI serves a Service on a fake engine over httptest.
func newTestAPI(t *testing.T, cfg HTTPConfig) (*httptest.Server, *Service, *fakeEngine) {
	t.Helper()
	eng := newFakeEngine()
	s := newTestService(t, "", eng)
	if cfg.MaxUpload == 0 {
		cfg.MaxUpload = 1 << 20
	}
	if cfg.AllowedHosts == nil {
		cfg.AllowedHosts = DefaultAllowedHosts
	}
	srv := httptest.NewServer(NewHandler(s, cfg))
	t.Cleanup(srv.Close)
	return srv, s, eng
}

// call sends a request with the token and returns the status and the
// decoded JSON body.
func call(t *testing.T, method, url, token string, body io.Reader, contentType string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: %d, body not JSON: %q", method, url, resp.StatusCode, b)
	}
	return resp.StatusCode, m
}

func TestAPIAuth(t *testing.T) {
	srv, _, _ := newTestAPI(t, HTTPConfig{Token: testToken})
	for _, tok := range []string{"", "wrong", testToken + "x"} {
		code, m := call(t, "GET", srv.URL+"/api/v1/torrents", tok, nil, "")
		if code != http.StatusUnauthorized || !strings.Contains(m["error"].(string), "token") {
			t.Fatalf("token %q: %d %v", tok, code, m)
		}
	}
	if code, m := call(t, "GET", srv.URL+"/api/v1/torrents", testToken, nil, ""); code != 200 {
		t.Fatalf("with the token: %d %v", code, m)
	}
	// Probes need no token.
	if code, _ := call(t, "GET", srv.URL+"/healthz", "", nil, ""); code != 200 {
		t.Fatalf("healthz: %d", code)
	}
	if code, _ := call(t, "GET", srv.URL+"/readyz", "", nil, ""); code != 200 {
		t.Fatalf("readyz: %d", code)
	}
	// Go's profiles need the token.
	if code, _ := call(t, "GET", srv.URL+"/debug/pprof/goroutine?debug=1", "", nil, ""); code != http.StatusUnauthorized {
		t.Fatalf("pprof without the token: %d", code)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/debug/pprof/goroutine?debug=1", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "goroutine profile") {
		t.Fatalf("pprof with the token: %d %.200s", resp.StatusCode, b)
	}
}

func TestAPIRefusesForeignHost(t *testing.T) {
	srv, _, _ := newTestAPI(t, HTTPConfig{Token: testToken})
	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/torrents", nil)
	req.Host = "evil.example:80"
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("foreign Host: %d, want 421", resp.StatusCode)
	}
}

func TestAPILifecycle(t *testing.T) {
	srv, s, _ := newTestAPI(t, HTTPConfig{Token: testToken})
	api := srv.URL + "/api/v1/torrents"
	// Raw body.
	code, m := call(t, "POST", api+"?seed_ratio=3", testToken, bytes.NewReader(testTorrent(t, "a.bin", 20_000)), "application/x-bittorrent")
	if code != http.StatusCreated {
		t.Fatalf("add: %d %v", code, m)
	}
	id := m["id"].(string)
	if lim := m["limits"].(map[string]any); lim["seed_ratio"] != 3.0 {
		t.Fatalf("limits %v", lim)
	}
	// Multipart, paused.
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("torrent", "b.torrent")
	fw.Write(testTorrent(t, "b.bin", 20_000))
	mw.WriteField("paused", "true")
	mw.Close()
	code, m = call(t, "POST", api, testToken, &buf, mw.FormDataContentType())
	if code != http.StatusCreated || m["state"] != StatePaused {
		t.Fatalf("multipart add: %d %v", code, m)
	}
	idB := m["id"].(string)
	if code, m = call(t, "POST", api, testToken, bytes.NewReader(testTorrent(t, "a.bin", 20_000)), ""); code != http.StatusConflict || m["id"] != id {
		t.Fatalf("duplicate: %d %v", code, m)
	}
	waitState(t, s, id, StateDownloading)
	code, m = call(t, "GET", api, testToken, nil, "")
	if list := m["torrents"].([]any); code != 200 || len(list) != 2 {
		t.Fatalf("list: %d %v", code, m)
	}
	code, m = call(t, "GET", api+"/"+id, testToken, nil, "")
	if code != 200 || len(m["files"].([]any)) != 1 || m["state"] != StateDownloading {
		t.Fatalf("show: %d %v", code, m)
	}
	if code, m = call(t, "POST", api+"/"+id+"/pause", testToken, nil, ""); code != 200 || m["state"] != StatePaused {
		t.Fatalf("pause: %d %v", code, m)
	}
	if code, m = call(t, "POST", api+"/"+idB+"/resume", testToken, nil, ""); code != 200 {
		t.Fatalf("resume: %d %v", code, m)
	}
	waitState(t, s, idB, StateDownloading)
	body := strings.NewReader(`{"seed": true, "seed_ratio": 0.5, "seed_time": "2h"}`)
	if code, m = call(t, "PUT", api+"/"+id+"/limits", testToken, body, "application/json"); code != 200 || m["limits"].(map[string]any)["seed_time"] != "2h0m0s" {
		t.Fatalf("limits: %d %v", code, m)
	}
	if code, m = call(t, "PUT", api+"/"+id+"/limits", testToken, strings.NewReader(`{"seed_ratio": -1}`), ""); code != 400 {
		t.Fatalf("negative ratio: %d %v", code, m)
	}
	if code, m = call(t, "DELETE", api+"/"+id+"?delete_data=true", testToken, nil, ""); code != 200 {
		t.Fatalf("remove: %d %v", code, m)
	}
	if code, m = call(t, "GET", api+"/"+id, testToken, nil, ""); code != 404 || !strings.Contains(m["error"].(string), "no such job") {
		t.Fatalf("show removed: %d %v", code, m)
	}
	for _, bad := range []string{"/..%2F..%2Fetc", "/zzz/pause"} {
		if code, _ = call(t, "GET", api+bad, testToken, nil, ""); code != 404 && code != 405 {
			t.Fatalf("GET %s: %d", bad, code)
		}
	}
}

func TestAPIMagnet(t *testing.T) {
	srv, _, _ := newTestAPI(t, HTTPConfig{Token: testToken})
	// Nobody to fetch the info from: refused at once.
	code, m := call(t, "POST", srv.URL+"/api/v1/torrents", testToken,
		strings.NewReader("magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567"), "text/plain")
	if code != http.StatusBadRequest || !strings.Contains(m["error"].(string), "nobody to fetch") {
		t.Fatalf("magnet: %d %v", code, m)
	}
	// With a peer (that never answers) it is a job fetching its metadata.
	code, m = call(t, "POST", srv.URL+"/api/v1/torrents", testToken,
		strings.NewReader("magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&x.pe=127.0.0.1:9"), "text/plain")
	if code != http.StatusCreated || m["state"] != StateFetchingMetadata {
		t.Fatalf("magnet with a peer: %d %v", code, m)
	}
}

// escapeTorrent is a multi-file torrent whose file path climbs out of
// its directory with "..".
func escapeTorrent() []byte {
	pieces := strings.Repeat("x", 20)
	info := "d5:filesld6:lengthi10e4:pathl2:..4:evileee4:name1:x12:piece lengthi16384e6:pieces20:" + pieces + "e"
	return []byte("d8:announce30:http://127.0.0.1:1/announce0004:info" + info + "e")
}

func TestAPIRefusesPathEscape(t *testing.T) {
	srv, s, _ := newTestAPI(t, HTTPConfig{Token: testToken})
	code, m := call(t, "POST", srv.URL+"/api/v1/torrents", testToken, bytes.NewReader(escapeTorrent()), "")
	if code != http.StatusBadRequest || !strings.Contains(m["error"].(string), `".."`) {
		t.Fatalf("escaping torrent: %d %v", code, m)
	}
	for _, d := range []string{filepath.Join(s.cfg.StateDir, "torrents"), s.cfg.DataDir} {
		if ents, _ := os.ReadDir(d); len(ents) != 0 {
			t.Fatalf("%s holds %d entries after a refused torrent", d, len(ents))
		}
	}
}

// TestAPIRefusesOversizedUpload: a declared 2 GiB upload gets 413 after
// the server has read at most a little of it.
func TestAPIRefusesOversizedUpload(t *testing.T) {
	srv, _, _ := newTestAPI(t, HTTPConfig{Token: testToken, MaxUpload: 1 << 20})
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/v1/torrents HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n", testToken, int64(2)<<30)
	conn.Write(make([]byte, 64<<10))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("2 GiB upload: %d, want 413", resp.StatusCode)
	}
	// Without a declared length (chunked) the limit stops the read.
	pr, pw := io.Pipe()
	go func() {
		chunk := make([]byte, 64<<10)
		for i := 0; i < 64; i++ { // 4 MiB, past the 1 MiB limit
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	code, m := call(t, "POST", srv.URL+"/api/v1/torrents", testToken, pr, "")
	pr.Close()
	if code != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked oversized upload: %d %v", code, m)
	}
}

// TestMetrics: /metrics parses with the Prometheus text parser, needs the
// token but not an allowed Host, and its figures follow a job.
func TestMetrics(t *testing.T) {
	srv, s, eng := newTestAPI(t, HTTPConfig{Token: testToken})
	in, err := s.Add(testTorrent(t, "a.bin", 50_000), AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, s, in.ID, StateDownloading)
	run := eng.run("a.bin")
	const turl = "http://127.0.0.1:1/announce"
	run.mu.Lock()
	run.trackers = []coordinator.TrackerReport{{TrackerStatus: tracker.TrackerStatus{URL: turl, Peers: 3},
		Seeders: 5, Leechers: -1, Overdue: 2, PeerList: []netip.AddrPort{netip.MustParseAddrPort("10.0.0.1:6881")},
		Latency: coordinator.LatencyStats{Answers: 4, P50: 20 * time.Millisecond, P90: 60 * time.Millisecond, Max: 80 * time.Millisecond}}}
	run.mu.Unlock()
	run.events <- coordinator.Progress{Status: swarm.Status{Pieces: 4, Written: 2, BytesDone: 32 << 10, Downloaded: 40_000,
		Returned: swarm.LeaseReturns{Missed: 3, Gone: 1},
		EndGame:  swarm.EndGame{Duplicated: 2, DuplicatedBytes: 2 << 20, Cancelled: 2},
		Workers:  []swarm.WorkerStatus{{Name: "local", Downloaded: 30_000}, {Name: "node1", Downloaded: 10_000}, {Name: "node1", Downloaded: 5}}}}
	testenv.WaitFor(t, 5*time.Second, "progress", func() bool { d, _ := s.Get(in.ID); return d.PiecesDone == 2 })
	d, err := s.Get(in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ti := d.Trackers[0]; ti.Latency == nil || ti.Latency.Answers != 4 || ti.OverduePackets != 2 || ti.PeersTotal != 3 ||
		!slices.Equal(ti.Peers, []string{"10.0.0.1:6881"}) || ti.Seeders == nil || *ti.Seeders != 5 || ti.Leechers != nil {
		t.Errorf("show's tracker %+v does not carry the job's report", ti)
	}
	if d.LeaseReturns.Missed != 3 || d.LeaseReturns.Gone != 1 {
		t.Errorf("lease returns %+v", d.LeaseReturns)
	}
	scrape := func(host, token string) (int, map[string]*dto.MetricFamily) {
		req, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
		req.Host = host
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return resp.StatusCode, nil
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(resp.Body)
		if err != nil {
			t.Fatalf("/metrics does not parse: %v", err)
		}
		return 200, fams
	}
	if _, fams := scrape("10.1.2.3:8080", testToken); fams["flotilla_dht_nodes"] != nil {
		t.Error("DHT metrics without a DHT")
	}
	eng.mu.Lock()
	eng.dhtStats = dht.Stats{Nodes: 37, Sent: 120, Received: 110, Lookups: 4, PeersFound: 9, AnnouncesMade: 6, Announced: 2, Malformed: 1,
		Queries: map[string]dht.QueryCounts{"get_peers": {Sent: 40, Answered: 31, TimedOut: 8, Errors: 1}}}
	eng.mu.Unlock()
	if code, _ := scrape("10.1.2.3:8080", ""); code != 401 {
		t.Fatalf("without the token: %d", code)
	}
	code, fams := scrape("10.1.2.3:8080", testToken)
	if code != 200 {
		t.Fatalf("scrape: %d", code)
	}
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		f := fams[name]
		if f == nil {
			t.Fatalf("no %s", name)
		}
	metric:
		for _, m := range f.Metric {
			for _, lp := range m.Label {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metric
				}
			}
			if m.Gauge != nil {
				return m.Gauge.GetValue()
			}
			if m.Histogram != nil {
				return float64(m.Histogram.GetSampleCount())
			}
			return m.Counter.GetValue()
		}
		t.Fatalf("no %s%v", name, labels)
		return 0
	}
	if v := value("flotilla_torrent_pieces_done", map[string]string{"id": in.ID}); v != 2 {
		t.Fatalf("pieces done %v", v)
	}
	if v := value("flotilla_torrent_downloaded_bytes_total", map[string]string{"id": in.ID}); v != 40_000 {
		t.Fatalf("downloaded %v", v)
	}
	if v := value("flotilla_worker_downloaded_bytes_total", map[string]string{"worker": "node1"}); v != 10_005 {
		t.Fatalf("node1 downloaded %v", v)
	}
	if v := value("flotilla_jobs", map[string]string{"state": StateDownloading}); v != 1 {
		t.Fatalf("downloading jobs %v", v)
	}
	tr := map[string]string{"id": in.ID, "tracker": turl}
	if v := value("flotilla_tracker_answers_total", tr); v != 4 {
		t.Errorf("tracker answers %v", v)
	}
	if v := value("flotilla_tracker_latency_seconds", map[string]string{"tracker": turl, "quantile": "0.9"}); v != 0.06 {
		t.Errorf("tracker p90 %v", v)
	}
	if v := value("flotilla_tracker_overdue_packets_total", tr); v != 2 {
		t.Errorf("tracker overdue packets %v", v)
	}
	if v := value("flotilla_tracker_peers", tr); v != 3 {
		t.Errorf("tracker peers %v", v)
	}
	if v := value("flotilla_tracker_swarm_peers", map[string]string{"kind": "seeders"}); v != 5 {
		t.Errorf("tracker seeders %v", v)
	}
	if v := value("flotilla_lease_returned_pieces_total", map[string]string{"reason": "missed"}); v != 3 {
		t.Errorf("missed lease pieces %v", v)
	}
	if v := value("flotilla_endgame_duplicated_bytes_total", map[string]string{"id": in.ID}); v != 2<<20 {
		t.Errorf("end game duplicated bytes %v", v)
	}
	for name, want := range map[string]float64{"flotilla_dht_nodes": 37, "flotilla_dht_lookups_total": 4, "flotilla_dht_peers_found_total": 9} {
		if v := value(name, nil); v != want {
			t.Errorf("%s %v, want %v", name, v, want)
		}
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"flotilla_dht_queries_total", map[string]string{"method": "get_peers", "result": "timeout"}, 8},
		{"flotilla_dht_queries_total", map[string]string{"method": "get_peers", "result": "answered"}, 31},
		{"flotilla_dht_queries_total", map[string]string{"method": "ping", "result": "sent"}, 0},
		{"flotilla_dht_announces_total", map[string]string{"direction": "sent"}, 6},
		{"flotilla_dht_packets_total", map[string]string{"direction": "out"}, 120},
		{"flotilla_dht_packets_total", map[string]string{"direction": "in"}, 110},
		{"flotilla_dht_dropped_packets_total", map[string]string{"reason": "malformed"}, 1},
	} {
		if v := value(c.name, c.labels); v != c.want {
			t.Errorf("%s%v %v, want %v", c.name, c.labels, v, c.want)
		}
	}
	if f := fams["flotilla_disk_write_seconds"]; f != nil {
		t.Errorf("disk latency of a store that wrote nothing: %v", f)
	}
	if fams["go_goroutines"] == nil || fams["process_resident_memory_bytes"] == nil {
		t.Fatal("no Go runtime or process metrics")
	}
}

// TestAPIPieces: GET /torrents/{id}/pieces gives the running job's piece
// sources (a byte per piece, base64) with their names; a job that does
// not run keeps its last run's; an unknown id is 404.
func TestAPIPieces(t *testing.T) {
	srv, s, eng := newTestAPI(t, HTTPConfig{Token: testToken})
	in, err := s.Add(testTorrent(t, "a.bin", 50_000), AddOptions{}) // 4 pieces
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, s, in.ID, StateDownloading)
	run := eng.run("a.bin")
	run.mu.Lock()
	run.sources = swarm.PieceSources{Names: []string{"disk", "local", "node1"}, Pieces: []byte{0, 2, 1, swarm.SourceNone}}
	run.mu.Unlock()
	url := srv.URL + "/api/v1/torrents/" + in.ID + "/pieces"
	code, m := call(t, "GET", url, testToken, nil, "")
	if code != 200 || m["sources"] != base64.StdEncoding.EncodeToString([]byte{0, 2, 1, 255}) || m["pieces"] != 4.0 ||
		m["running"] != true || len(m["names"].([]any)) != 3 {
		t.Fatalf("pieces: %d %v", code, m)
	}
	if _, err := s.Pause(in.ID); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, in.ID, StatePaused)
	// The paused job's map, once its run closed, is that run's as it ended.
	testenv.WaitFor(t, 5*time.Second, "the paused job's last map", func() bool {
		code, m = call(t, "GET", url, testToken, nil, "")
		return m["running"] == false && m["sources"] != base64.StdEncoding.EncodeToString([]byte{255, 255, 255, 255})
	})
	if code != 200 || m["sources"] != base64.StdEncoding.EncodeToString([]byte{0, 2, 1, 255}) {
		t.Fatalf("paused job's pieces: %d %v", code, m)
	}
	if code, _ = call(t, "GET", srv.URL+"/api/v1/torrents/nope/pieces", testToken, nil, ""); code != 404 {
		t.Fatalf("unknown id: %d", code)
	}
}

// TestMagnetFetchSurvivesRestart: a magnet link whose info is being
// fetched is in the state file: GET shows it "fetching metadata" (not
// 404), a restart resumes the fetch (its peer is dialled again), and
// Remove forgets it for good.
func TestMagnetFetchSurvivesRestart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dials := make(chan struct{}, 64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // never answers: the fetch goes on until the service closes
			select {
			case dials <- struct{}{}:
			default:
			}
		}
	}()
	waitDial := func(what string) {
		t.Helper()
		select {
		case <-dials:
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: the magnet's peer was never dialled", what)
		}
	}
	dir := t.TempDir()
	const hash = "0123456789abcdef0123456789abcdef01234567"
	s1 := newTestService(t, dir, newFakeEngine())
	in, err := s1.Add([]byte("magnet:?xt=urn:btih:"+hash+"&dn=later.bin&x.pe="+ln.Addr().String()), AddOptions{Paused: true})
	if err != nil || in.State != StateFetchingMetadata {
		t.Fatalf("add: %+v %v", in, err)
	}
	waitDial("first run")
	if d, err := s1.Get(in.ID); err != nil || d.State != StateFetchingMetadata || d.Name != "later.bin" || d.InfoHash != hash {
		t.Fatalf("get: %+v %v", d, err)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	for len(dials) > 0 { // the first run's
		<-dials
	}
	if b, err := os.ReadFile(jobsPath(dir + "/state")); err != nil || !strings.Contains(string(b), hash) || !strings.Contains(string(b), `"paused": true`) {
		t.Fatalf("the state file does not keep the magnet: %v\n%s", err, b)
	}

	s2 := newTestService(t, dir, newFakeEngine())
	if d, err := s2.Get(in.ID); err != nil || d.State != StateFetchingMetadata {
		t.Fatalf("after a restart: %+v %v", d, err)
	}
	waitDial("after a restart")
	if l, _ := s2.List(); len(l) != 1 || l[0].ID != in.ID {
		t.Fatalf("list: %+v", l)
	}
	if err := s2.Remove(in.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Get(in.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after remove: %v", err)
	}
	s2.Close()
	s3 := newTestService(t, dir, newFakeEngine())
	if l, _ := s3.List(); len(l) != 0 {
		t.Fatalf("a removed magnet came back: %+v", l)
	}
}

// TestDHTFindsPeersForTrackerless: with the DHT on, a magnet link without
// tracker or peer is fetched (its peers come from the DHT) and a torrent
// without a tracker is added, unless it is private.
func TestDHTFindsPeersForTrackerless(t *testing.T) {
	eng := newFakeEngine()
	eng.dhtStats.Sent = 1
	s := newTestService(t, "", eng)
	in, err := s.Add([]byte("magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567"), AddOptions{})
	if err != nil || in.State != StateFetchingMetadata {
		t.Fatalf("trackerless magnet: %+v %v", in, err)
	}
	build := func(private bool) []byte {
		var b bytes.Buffer
		raw, err := metainfo.Build("free.bin", []metainfo.File{{Length: 1000}}, 16<<10, nil, bytes.NewReader(make([]byte, 1000)))
		if err != nil {
			t.Fatal(err)
		}
		if !private {
			return raw
		}
		// "7:privatei1e" added to the info dictionary, after "pieces"
		// (keys sorted), whose one piece's hash is 20 bytes
		i := bytes.Index(raw, []byte("6:pieces20:")) + len("6:pieces20:") + 20
		b.Write(raw[:i])
		b.WriteString("7:privatei1e")
		b.Write(raw[i:])
		return b.Bytes()
	}
	if _, err := s.Add(build(false), AddOptions{Paused: true}); err != nil {
		t.Fatalf("trackerless torrent with the DHT on: %v", err)
	}
	if t2, err := metainfo.Parse(build(true)); err != nil || !t2.Info.Private {
		t.Fatalf("the private torrent: %v", err)
	}
	if _, err := s.Add(build(true), AddOptions{Paused: true}); !errors.Is(err, ErrBadTorrent) || !strings.Contains(err.Error(), "private") {
		t.Fatalf("private trackerless torrent: %v, want ErrBadTorrent", err)
	}
}
