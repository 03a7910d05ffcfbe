package delegate_test

import (
	"context"
	"log"
	"net/netip"

	"flotilla/cluster"
	"flotilla/delegate"
	"flotilla/metainfo"
	"flotilla/peerswarm"
	"flotilla/swarm"
)

// The coordinator hands a node part of a download: the RemoteSwarm joins
// the sub-chief like the local swarm.
func ExampleDial() {
	var (
		key  cluster.Key       // from cluster.LoadKey
		tor  *metainfo.Torrent // the download
		d    *swarm.Download   // its sub-chief
		ls   *peerswarm.Swarm  // the local peer swarm given to it
		node = "10.0.0.7:7947" // the node's delegate address from its cluster metadata
	)
	r, err := delegate.Dial(context.Background(), node, key, delegate.JobSpec{
		InfoHash: tor.InfoHash, InfoBytes: tor.InfoBytes, Trackers: tor.Tiers(),
		CoordinatorPeerAddr: ls.Addr().String(),
	}, delegate.DefaultClientConfig())
	if err != nil {
		log.Print(err) // errors.Is(err, delegate.ErrAuth): the node has another key
		return
	}
	d.AddWorker(r) // the sub-chief owns and closes it; d.RemoveWorker(r) when the member fails
}

// A swarm node serves jobs until stopped, announcing each job's peer
// swarm to the job's trackers.
func ExampleNewServer() {
	var key cluster.Key
	cfg := delegate.DefaultServerConfig()
	cfg.Key, cfg.Name = key, "node1"
	cfg.ListenAddr = "0.0.0.0:7947"
	cfg.PeerListen = "0.0.0.0:6881"
	cfg.DataDir = "/var/lib/flotilla"
	cfg.OnJob = func(j delegate.JobInfo) (stop func()) {
		// Start announcing j.InfoHash with j.PeerID and j.PeerAddr to
		// j.Trackers; feed the peers found to j.AddPeers, report j.Stats.
		j.AddPeers([]netip.AddrPort{})
		return func() { /* stop announcing */ }
	}
	srv, err := delegate.NewServer(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	srv.Serve() // until Close
}
