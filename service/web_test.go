package service

import (
	"io"
	"io/fs"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"flotilla/coordinator"
	"flotilla/internal/testenv"
)

// TestDashboardIsSelfContained: the embedded dashboard names no resource
// outside its own origin, and is served (with a CSP) without a token.
func TestDashboardIsSelfContained(t *testing.T) {
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	fs.WalkDir(webFiles, "web", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := webFiles.ReadFile(path)
		if m := external.Find(b); m != nil {
			t.Errorf("%s refers to %q outside the daemon", path, m)
		}
		return nil
	})
	srv, _, _ := newTestAPI(t, HTTPConfig{Token: testToken})
	for _, p := range []string{"/", "/app.js", "/style.css"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") || len(b) == 0 {
			t.Fatalf("GET %s: %d, CSP %q", p, resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
		}
	}
	req, _ := http.NewRequest("GET", srv.URL+"/", nil)
	req.Host = "evil.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("dashboard for a foreign Host: %d", resp.StatusCode)
	}
}

func TestAlerts(t *testing.T) {
	eng := newFakeEngine()
	s := newTestService(t, "", eng)
	in, _ := s.Add(testTorrent(t, "a.bin", 10_000), AddOptions{})
	waitState(t, s, in.ID, StateDownloading)
	r := eng.run("a.bin")
	r.events <- coordinator.Overdue{Kind: "announce", Tracker: "http://t.example/announce", Waited: 3 * time.Second}
	r.events <- coordinator.NodeQuarantined{Name: "node1", Identity: "10.0.0.1"}
	var list []Alert
	var next int64
	testenv.WaitFor(t, 5*time.Second, "two alerts", func() bool {
		list, next, _ = s.Alerts(0)
		return len(list) == 2
	})
	if list[0].Job != in.ID || list[0].Level != "warn" || !strings.Contains(list[0].Message, "t.example") || list[1].Level != "error" {
		t.Fatalf("alerts %+v", list)
	}
	if more, _, _ := s.Alerts(next); len(more) != 0 {
		t.Fatalf("alerts since %d: %+v", next, more)
	}
}
