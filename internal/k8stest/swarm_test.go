package k8stest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"flotilla/internal/lab"
	"flotilla/internal/testenv"
)

// download is a generated payload, its torrent on the test's opentracker
// and one rate-capped aria2c seeding it, all on the node's address so
// that pods reach them.
type download struct {
	payload *lab.Payload
	torrent *lab.Torrent
	body    []byte // the .torrent file
}

// seedersPer is the number of aria2c seeders of each torrent. aria2c
// unchokes only four peers at once (and one more every 30 s): the
// coordinator and five nodes need two seeders to be served at once.
const seedersPer = 2

// startSwarms starts one opentracker and, for each spec, seedersPer
// aria2c seeders each uploading at most rate (aria2c's
// --max-upload-limit) so that the test's steps happen mid-download.
func startSwarms(t *testing.T, ip string, piece int64, rate string, specs ...lab.PayloadSpec) []*download {
	t.Helper()
	testenv.Require(t, "opentracker", "aria2c", "mktorrent")
	ctx := context.Background()
	cl := &lab.Cleanup{}
	t.Cleanup(cl.Run)
	dir := t.TempDir()
	host := lab.Loopback(ip) // any address of this network namespace
	var ihs [][20]byte
	var payloads []*lab.Payload
	for i, spec := range specs {
		p, err := lab.WritePayload(filepath.Join(dir, fmt.Sprintf("data%d", i)), spec)
		if err != nil {
			t.Fatal(err)
		}
		// The info-hash does not depend on the tracker: learn it to whitelist it.
		probe, err := lab.MakeTorrent(ctx, p, piece, [][]string{{"http://127.0.0.1:1/announce"}}, filepath.Join(dir, fmt.Sprintf("probe%d.torrent", i)))
		if err != nil {
			t.Fatal(err)
		}
		payloads = append(payloads, p)
		ihs = append(ihs, probe.InfoHash)
	}
	ot, err := lab.StartOpentracker(ctx, cl, host, filepath.Join(dir, "tracker"), ihs...)
	if err != nil {
		t.Fatal(err)
	}
	var ds []*download
	for i, p := range payloads {
		tor, err := lab.MakeTorrent(ctx, p, piece, [][]string{{ot.HTTPAnnounce}}, filepath.Join(dir, fmt.Sprintf("t%d.torrent", i)))
		if err != nil {
			t.Fatal(err)
		}
		body, err := os.ReadFile(tor.Path)
		if err != nil {
			t.Fatal(err)
		}
		for k := range seedersPer {
			port, err := host.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			args := append(lab.Aria2SeedArgs(ip, port, filepath.Dir(p.Path), tor.Path), "--max-upload-limit="+rate)
			name := fmt.Sprintf("seeder%d.%d", i, k)
			if _, err := lab.StartProc(cl, name, host.Command(ctx, "aria2c", args...), filepath.Join(dir, name+".log")); err != nil {
				t.Fatal(err)
			}
		}
		ds = append(ds, &download{payload: p, torrent: tor, body: body})
	}
	for _, d := range ds {
		testenv.WaitEvery(t, 2*time.Minute, 100*time.Millisecond, "the seeders to register with the tracker", func() bool {
			s, err := ot.ScrapeInfo(ctx, d.torrent.InfoHash)
			return err == nil && s.Complete >= seedersPer
		})
	}
	return ds
}
