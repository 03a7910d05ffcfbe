package coordinator

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"flotilla/cluster"
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
	key, err := cluster.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ccfg := cluster.DefaultConfig()
	ccfg.Name, ccfg.BindAddr, ccfg.Key, ccfg.Profile = "coord", "127.0.0.1:0", key, cluster.ProfileLocal
	ccfg.Meta = cluster.Meta{Role: cluster.RoleCoordinator, Slots: 80}
	me, err := c.JoinCluster(ClusterConfig{Cluster: ccfg})
	if err != nil {
		t.Fatal(err)
	}

	dln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	scfg := delegate.DefaultServerConfig()
	scfg.Key, scfg.Name, scfg.Listener, scfg.DataDir = key, "node1", dln, t.TempDir()
	scfg.PeerListen = "127.0.0.1:0"
	scfg.Swarm.Encryption = mse.Off
	scfg.OnJob = func(j delegate.JobInfo) func() {
		j.AddPeers([]netip.AddrPort{seederAddr})
		return nil
	}
	srv, err := delegate.NewServer(scfg)
	if err != nil {
		dln.Close()
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })
	ncfg := cluster.DefaultConfig()
	ncfg.Name, ncfg.BindAddr, ncfg.Key, ncfg.Profile = "node1", "127.0.0.1:0", key, cluster.ProfileLocal
	ncfg.Join, ncfg.JoinRetry, ncfg.JoinRetryMax = []string{me.Addr.String()}, 50*time.Millisecond, 200*time.Millisecond
	ncfg.Meta = cluster.Meta{Role: cluster.RoleSwarmNode, DelegateAddr: dln.Addr().String(), Slots: 10}
	node, err := cluster.Start(ncfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	go func() {
		for range node.Events() {
		}
	}()

	ev, ok := nextEvent(t, job, 60*time.Second).(Completed)
	if !ok {
		t.Fatalf("%#v, want Completed", ev)
	}
	delivered := 0
	for _, w := range ev.Status.Workers {
		if w.Name == "node1" {
			delivered = w.Delivered
		}
	}
	if delivered == 0 {
		t.Fatal("the node delivered no piece")
	}
	if err := job.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "e", "data.bin"))
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("download differs: %v", err)
	}
}
