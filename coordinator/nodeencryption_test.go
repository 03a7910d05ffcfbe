package coordinator

import (
	"bytes"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"flotilla/delegate"
	"flotilla/peerwire/mse"
)

// TestNodeFollowsEncryption: a coordinator requiring encryption gives its
// job's swarm node the setting, and the node (its own setting off) follows
// it: the only seeder also requires encryption and is given to the node
// alone, so the download completes only through an encrypted node.
func TestNodeFollowsEncryption(t *testing.T) {
	payload := bytes.Repeat([]byte("encrypted node torrent "), 30000)
	tor, seedDir := newPayloadTorrent(t, "e", payload)
	require := func(c *Config) { c.Encryption = mse.Require }
	seeder := newTestCoordinator(t, require)
	seedJob(t, seeder, tor, seedDir)
	seederAddr := seeder.Addr().AddrPort()

	c := newTestCoordinator(t, require)
	dir := t.TempDir()
	job := startTestJob(t, c, tor, dir, nil)
	startTestNode(t, c, func(s *delegate.ServerConfig) {
		s.Swarm.Encryption = mse.Off
		s.OnJob = func(j delegate.JobInfo) func() {
			j.AddPeers([]netip.AddrPort{seederAddr})
			return nil
		}
	})

	ev, ok := nextEvent(t, job, 60*time.Second).(Completed)
	if !ok {
		t.Fatalf("%#v, want Completed", ev)
	}
	if delivered(ev.Status, "node1") == 0 {
		t.Fatal("the node delivered no piece")
	}
	if err := job.Close(); err != nil {
		t.Fatal(err)
	}
	checkDownload(t, dir, filepath.Join("e", "data.bin"), payload)
}
