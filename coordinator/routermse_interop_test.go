package coordinator

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"flotilla/internal/lab"
	"flotilla/internal/testenv"
	"flotilla/peerwire/mse"
)

// TestAria2DialsInEncrypted: an aria2c seeder with its default settings
// learns of our job from the tracker and dials us; its first connection
// is an MSE handshake, which the router must now answer (it used to close
// it as not BitTorrent, and aria2c retried in plaintext). Under prefer
// and require alike no incoming connection fails and the job completes
// from that seeder alone.
func TestAria2DialsInEncrypted(t *testing.T) {
	testenv.Require(t, "aria2c", "opentracker", "mktorrent")
	for i, p := range []mse.Policy{mse.Prefer, mse.Require} {
		t.Run(p.String(), func(t *testing.T) {
			cl := &lab.Cleanup{}
			t.Cleanup(cl.Run)
			sw, tor := startLabSwarm(t, cl, "e.bin", uint64(40+i), 4<<20, lab.LoopbackHosts(70+2*i, 1), "")
			sw.Seeders[0].Stop() // only a seeder that dials us can serve it
			c := newTestCoordinator(t, func(c *Config) { c.Encryption = p })
			dir := t.TempDir()
			job := startTestJob(t, c, tor, dir, nil)
			ctx := context.Background()
			testenv.WaitFor(t, 20*time.Second, "the job announced to the tracker", func() bool {
				r, err := sw.Tracker.ScrapeInfo(ctx, tor.InfoHash)
				return err == nil && r.Incomplete >= 1
			})
			seeder := lab.Loopback("127.0.0." + strconv.Itoa(71+2*i))
			port := testenv.FreePort(t, seeder.IP())
			cmd := seeder.Command(ctx, "aria2c", lab.Aria2SeedArgs(seeder.IP(), port, filepath.Join(sw.Dir, "data"), sw.Torrent.Path)...)
			cmd.Dir = sw.Dir
			if _, err := lab.StartProc(cl, "late-seeder", cmd, filepath.Join(sw.Dir, "logs", "late-seeder.log")); err != nil {
				t.Fatal(err)
			}
			if ev, ok := nextEvent(t, job, 60*time.Second).(Completed); !ok {
				t.Fatalf("%#v, want Completed", ev)
			}
			if err := sw.Payload.Verify(dir); err != nil {
				t.Fatal(err)
			}
			s := c.Incoming()
			t.Logf("incoming: %+v", s)
			if s.Routed < 1 || s.Failed != 0 {
				t.Fatalf("incoming %+v: want routed, none failed", s)
			}
		})
	}
}
