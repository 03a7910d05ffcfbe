package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"flotilla/internal/lab"
	"flotilla/internal/testenv"
	"flotilla/service"
)

// TestDashboardInBrowser loads coord serve's dashboard in a real headless
// Chromium while a real download runs through a swarm node: the page asks
// for the token, its progress and node list update, and a torrent added
// through the page downloads. Screenshots go to the test's artifact
// directory (go test -artifacts keeps them).
func TestDashboardInBrowser(t *testing.T) {
	testenv.Require(t, "chromium")
	a := newSwarmLab(t, lab.PayloadSpec{Name: "a.bin", Seed: 61, Size: 40 << 20}, 1<<18, 1, "--max-upload-limit=4M")
	b := newSwarmLab(t, lab.PayloadSpec{Name: "b.bin", Seed: 63, Size: 4<<20 + 3}, 1<<18, 1)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "cluster.key")
	out, err := runKeygenFile(t)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFile0600(keyFile, out); err != nil {
		t.Fatal(err)
	}
	gossip := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t, "127.0.0.1"))
	s := startServe(t, dir, "--seed=false", "--cluster-listen", gossip, "--cluster-key-file", keyFile)
	startSwarmNode(t, gossip, keyFile, "127.0.0.42", "node1", filepath.Join(dir, "node1"))
	ja := s.add(t, a.torrent.Path, "")
	page := strings.TrimSuffix(s.api, "/api/v1") + "/"

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.NoSandbox, chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	defer cancelTimeout()
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile(filepath.Join(t.ArtifactDir(), name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		// The page redraws its tables every second, so its nodes are read
		// with a script rather than held by id.
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector(`+strconv.Quote(sel)+`) || {}).textContent || ""`))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}

	// The page asks for the token before it shows anything.
	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(1280, 1400),
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), serveToken),
		chromedp.Click(chromedp.CSS("#login-form button")),
	); err != nil {
		t.Fatalf("log in: %v\n%s", err, s.out.String())
	}
	row := `#torrents tbody tr[data-id="` + ja.ID + `"]`
	testenv.WaitFor(t, 30*time.Second, "the page to list the job", func() bool { return text(row) != "" })
	first := text(row)
	testenv.WaitFor(t, time.Minute, "the page's progress to move", func() bool {
		now := text(row)
		return now != first && strings.Contains(now, "downloading")
	})
	testenv.WaitFor(t, time.Minute, "the page's node list to show node1", func() bool {
		return strings.Contains(text("#nodes tbody"), "node1")
	})
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector(`+strconv.Quote(row)+`).click(), true`)); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, "the detail to list the swarms", func() bool {
		return strings.Contains(text("#workers tbody"), "local")
	})
	shot("downloading.png")

	// Add a torrent through the page.
	if err := chromedp.Do(ctx,
		chromedp.SetUploadFiles(chromedp.ID("add-file"), []string{b.torrent.Path}),
		chromedp.Click(chromedp.ID("add-button")),
	); err != nil {
		t.Fatal(err)
	}
	var jb service.JobInfo
	testenv.WaitFor(t, 30*time.Second, "the torrent added through the page", func() bool {
		var list struct{ Torrents []service.JobInfo }
		s.do(t, "GET", "/torrents", nil, &list)
		for _, j := range list.Torrents {
			if j.Name == "b.bin" {
				jb = j
				return true
			}
		}
		return false
	})
	for _, c := range []struct {
		id string
		l  *swarmLab
	}{{ja.ID, a}, {jb.ID, b}} {
		d := s.waitState(t, c.id, 2*time.Minute, service.StateDone, service.StateFailed)
		if d.State != service.StateDone {
			t.Fatalf("job %s: %+v", c.id, d.JobInfo)
		}
		if err := c.l.payload.Verify(d.DataDir); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 30*time.Second, "the page to show both jobs done", func() bool {
		return strings.Count(text("#torrents tbody"), "done") == 2
	})
	checkPieceMap(t, ctx, s, ja.ID)
	shot("done.png") // a.bin's detail: its piece map in local's and node1's colours
	if !strings.Contains(text("#alerts"), "download complete") {
		t.Errorf("the page's alerts do not show the completions: %q", text("#alerts"))
	}
}

// pieceMapColours counts the distinct colours the page's piece map drew,
// the "not yet" grey aside.
const pieceMapColours = `(() => {
	const c = document.querySelector("#piecemap");
	const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
	const seen = new Set();
	for (let i = 0; i < d.length; i += 4) {
		if (d[i+3] === 0 || (d[i] === 0xe3 && d[i+1] === 0xe6 && d[i+2] === 0xea)) continue;
		seen.add(d[i] + "," + d[i+1] + "," + d[i+2]);
	}
	return seen.size;
})()`

// checkPieceMap: the page's piece map of job id (clicked, done) shows
// its last run's sources as the API gives them, one colour per swarm: as
// many colours as swarms delivered pieces, more than one when the swarm
// node delivered some.
func checkPieceMap(t *testing.T, ctx context.Context, s *serveProc, id string) {
	t.Helper()
	var m service.PieceMap
	if code := s.do(t, "GET", "/torrents/"+id+"/pieces", nil, &m); code != 200 || len(m.Sources) != m.Pieces {
		t.Fatalf("pieces: %d %+v", code, m)
	}
	used := map[string]int{}
	for _, k := range m.Sources {
		if k == 255 {
			t.Fatalf("a piece of the done job has no source: %+v", m)
		}
		used[m.Names[k]]++
	}
	t.Logf("pieces of %s by source: %v", id, used)
	if used["node1"] == 0 {
		t.Errorf("node1 delivered no piece of %s (%v): the piece map cannot show two swarms", id, used)
	}
	row := `#torrents tbody tr[data-id="` + id + `"]`
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector(`+strconv.Quote(row)+`).click(), true`)); err != nil {
		t.Fatal(err)
	}
	var sources string
	var colours int
	testenv.WaitFor(t, 30*time.Second, "the piece map to draw every source", func() bool {
		var err error
		job, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#piecemap").dataset.job || ""`))
		if err != nil {
			t.Fatal(err)
		}
		sources, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#piecemap").dataset.sources || ""`))
		if err != nil {
			t.Fatal(err)
		}
		if job != id {
			return false
		}
		colours, err = chromedp.Run(ctx, chromedp.Evaluate[int](pieceMapColours))
		if err != nil {
			t.Fatal(err)
		}
		return len(strings.Fields(sources)) == len(used) && colours == len(used)
	})
	if colours < 2 {
		t.Errorf("the piece map drew %d colours (sources %q)", colours, sources)
	}
}
