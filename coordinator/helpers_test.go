package coordinator

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"flotilla/cluster"
	"flotilla/delegate"
	"flotilla/metainfo"
	"flotilla/swarm"
)

// testPayload is the data of newTestTorrent's torrent.
var testPayload = bytes.Repeat([]byte("flotilla"), 40000)

// newTestTorrent returns a one-file torrent of testPayload in 64 KiB
// pieces announcing to tiers.
func newTestTorrent(t *testing.T, tiers [][]string) *metainfo.Torrent {
	t.Helper()
	raw, err := metainfo.Build("payload.bin", []metainfo.File{{Path: []string{"payload.bin"}, Length: int64(len(testPayload))}},
		1<<16, tiers, bytes.NewReader(testPayload))
	if err != nil {
		t.Fatal(err)
	}
	tor, err := metainfo.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return tor
}

// testPayloadDir returns a directory holding newTestTorrent's data,
// ready to seed.
func testPayloadDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	// A torrent built from a file list is a directory named after it.
	if err := os.Mkdir(filepath.Join(dir, "payload.bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "payload.bin", "payload.bin"), testPayload, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// newPayloadTorrent returns a one-file torrent named name of payload in
// 64 KiB pieces, and a directory holding its data, ready to seed.
func newPayloadTorrent(t *testing.T, name string, payload []byte) (*metainfo.Torrent, string) {
	t.Helper()
	raw, err := metainfo.Build(name, []metainfo.File{{Path: []string{"data.bin"}, Length: int64(len(payload))}},
		1<<16, nil, bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	tor, err := metainfo.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// A torrent built from a file list is a directory named after it.
	if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name, "data.bin"), payload, 0o644); err != nil {
		t.Fatal(err)
	}
	return tor, dir
}

// newTestCoordinator starts a Coordinator listening on loopback, with
// opts applied to its config, closed at the end of the test.
func newTestCoordinator(t *testing.T, opts ...func(*Config)) *Coordinator {
	t.Helper()
	cfg := Config{ListenAddr: "127.0.0.1:0"}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return c
}

// startTestJob opens and starts a job of c for tor into dir, with opts
// applied to its config.
func startTestJob(t *testing.T, c *Coordinator, tor *metainfo.Torrent, dir string, peers []netip.AddrPort, opts ...func(*JobConfig)) *Job {
	t.Helper()
	cfg := DefaultJobConfig()
	cfg.Torrent, cfg.Dir, cfg.Tiers, cfg.Preallocate, cfg.DirectIO = tor, dir, tor.Tiers(), false, false
	for _, o := range opts {
		o(&cfg)
	}
	j, err := c.OpenJob(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	if err := j.Start(peers); err != nil {
		t.Fatal(err)
	}
	return j
}

// seedJob starts a seeding job of c for tor from dir and waits until it
// has checked its data.
func seedJob(t *testing.T, c *Coordinator, tor *metainfo.Torrent, dir string) *Job {
	t.Helper()
	j := startTestJob(t, c, tor, dir, nil, func(c *JobConfig) { c.Seed = true })
	if ev, ok := nextEvent(t, j, 10*time.Second).(Completed); !ok {
		t.Fatalf("seed job %s: %#v, want Completed", tor.Info.Name, ev)
	}
	return j
}

// nextEvent waits for a job's next event that is not Progress.
func nextEvent(t *testing.T, j *Job, timeout time.Duration) Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev := <-j.Events():
			if _, ok := ev.(Progress); !ok {
				return ev
			}
		case <-deadline:
			t.Fatalf("no event in %v", timeout)
			return nil
		}
	}
}

// checkDownload checks that dir holds want as file (a path under dir).
func checkDownload(t *testing.T, dir, file string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("%s: downloaded file differs from the payload (err %v)", file, err)
	}
}

// joinTestCluster joins c to a fresh local cluster as its coordinator and
// returns the cluster's key and c's gossip address.
func joinTestCluster(t *testing.T, c *Coordinator) (cluster.Key, string) {
	t.Helper()
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
	if me.Name != "coord" || !me.Addr.IsValid() {
		t.Fatalf("JoinCluster: %+v", me)
	}
	return key, me.Addr.String()
}

// startTestMember joins the cluster at join as the swarm node "node1"
// whose delegate endpoint is delegateAddr, until the end of the test.
func startTestMember(t *testing.T, key cluster.Key, join, delegateAddr string) {
	t.Helper()
	startNamedMember(t, key, join, "node1", delegateAddr)
}

// startNamedMember is startTestMember for a node called name; it returns
// the membership (closed at the end of the test, if not before).
func startNamedMember(t *testing.T, key cluster.Key, join, name, delegateAddr string) *cluster.Cluster {
	t.Helper()
	ncfg := cluster.DefaultConfig()
	ncfg.Name, ncfg.BindAddr, ncfg.Key, ncfg.Profile = name, "127.0.0.1:0", key, cluster.ProfileLocal
	ncfg.Join, ncfg.JoinRetry, ncfg.JoinRetryMax = []string{join}, 50*time.Millisecond, 200*time.Millisecond
	ncfg.Meta = cluster.Meta{Role: cluster.RoleSwarmNode, DelegateAddr: delegateAddr, Slots: 10}
	node, err := cluster.Start(ncfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	go func() {
		for range node.Events() {
		}
	}()
	return node
}

// startTestNode joins c to a fresh local cluster and starts a swarm node
// "node1" in it: a real delegate server whose jobs run real local peer
// swarms. mod adjusts the server's config (OnJob, caps, encryption).
func startTestNode(t *testing.T, c *Coordinator, mod func(*delegate.ServerConfig)) *delegate.Server {
	t.Helper()
	key, join := joinTestCluster(t, c)
	return startClusterNode(t, key, join, "node1", mod)
}

// startClusterNode starts a swarm node called name in the cluster at join
// (joinTestCluster): a real delegate server whose jobs run real local peer
// swarms, until the end of the test. mod adjusts the server's config.
func startClusterNode(t *testing.T, key cluster.Key, join, name string, mod func(*delegate.ServerConfig)) *delegate.Server {
	t.Helper()
	srv, _ := startClusterMember(t, key, join, name, mod)
	return srv
}

// startClusterMember is startClusterNode that also returns the node's
// membership, for a test that stops the node itself.
func startClusterMember(t *testing.T, key cluster.Key, join, name string, mod func(*delegate.ServerConfig)) (*delegate.Server, *cluster.Cluster) {
	t.Helper()
	dln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	scfg := delegate.DefaultServerConfig()
	scfg.Key, scfg.Name, scfg.Listener, scfg.DataDir = key, name, dln, t.TempDir()
	scfg.PeerListen = "127.0.0.1:0"
	if mod != nil {
		mod(&scfg)
	}
	srv, err := delegate.NewServer(scfg)
	if err != nil {
		dln.Close()
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })
	return srv, startNamedMember(t, key, join, name, dln.Addr().String())
}

// testTorrent is a small torrent with its payload, seeded by a seeder.
type testTorrent struct {
	tor     *metainfo.Torrent
	payload []byte
	dir     string // the downloader's
}

// loopbackPeers lets every peer of a test, all on 127.0.0.1, connect at
// once (the router's per-address cap on connections being identified
// would otherwise evict some, which redial only after a back-off).
func loopbackPeers(c *Config) { c.Incoming.MaxPendingPerIP = 128 }

// newSeededTorrents makes n small distinct torrents, all seeded by one
// seeder Coordinator, whose address it returns.
func newSeededTorrents(t *testing.T, n, pieces int) ([]*testTorrent, netip.AddrPort) {
	t.Helper()
	seeder := newTestCoordinator(t, loopbackPeers)
	out := make([]*testTorrent, n)
	for i := range out {
		line := []byte(fmt.Sprintf("torrent %02d of %d, piece data; ", i, n))
		payload := bytes.Repeat(line, pieces<<16/len(line)+1)[:pieces<<16-1000]
		name := fmt.Sprintf("t%02d", i)
		tor, seedDir := newPayloadTorrent(t, name, payload)
		seedJob(t, seeder, tor, seedDir)
		out[i] = &testTorrent{tor: tor, payload: payload, dir: t.TempDir()}
	}
	return out, seeder.Addr().AddrPort()
}

// checkFile checks a downloaded torrent against its payload.
func (tt *testTorrent) checkFile(t *testing.T) {
	t.Helper()
	checkDownload(t, tt.dir, filepath.Join(tt.tor.Info.Name, "data.bin"), tt.payload)
}

// waitCompleted reads j's events until Completed (other events go to
// seen) and returns how many pieces the node delivered.
func waitCompleted(t *testing.T, j *Job, timeout time.Duration, seen func(Event)) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		switch ev := nextEvent(t, j, time.Until(deadline)).(type) {
		case Completed:
			return delivered(ev.Status, "node1")
		case Failed:
			t.Fatalf("job %s failed: %v", j.cfg.Torrent.Info.Name, ev.Err)
		default:
			if seen != nil {
				seen(ev)
			}
		}
	}
}

// delivered is how many pieces worker name delivered, as st says.
func delivered(st swarm.Status, name string) int {
	for _, w := range st.Workers {
		if w.Name == name {
			return w.Delivered
		}
	}
	return 0
}

// nodeWorker is the node's worker in j's status, if any.
func nodeWorker(j *Job) (swarm.WorkerStatus, bool) {
	for _, w := range j.dl.Status().Workers {
		if w.Name == "node1" {
			return w, true
		}
	}
	return swarm.WorkerStatus{}, false
}
