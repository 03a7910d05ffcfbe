// Package coordinator is Flotilla's coordinator without its terminal: the
// main loop of DESIGN point 6, which waits for the trackers, the watchdog,
// the cluster and the sub-chief and reports what happens as events. It
// prints nothing and parses no flags; cmd/coord (and later the service)
// turns its events and errors into output.
//
// # What owns what
//
// A Coordinator owns what a process's downloads share: the peer listener
// with its router, the tracker client with its UDP coordinator
// (tracker.Client), the watchdog and, after JoinCluster, the cluster
// membership (cluster.Cluster) with one delegate session per swarm node
// (nodeSessions, nodesessions.go), shared by every job. Many jobs run on one Coordinator at once,
// one per torrent. One goroutine, Coordinator.run, owns the set of jobs
// and the membership: it hands every membership event to each job and
// reads the watchdog's alerts. Other goroutines reach that state only by
// sending it a function to run (Coordinator.do). With Config.DHT it also
// owns one DHT node (dht.Node, its own goroutines and UDP socket), whose
// queries are packets of the shared watchdog; each job of a public
// torrent runs its lookups on a goroutine that feeds the peers found to
// Job.run as the tracker watches do (dhtsource.go).
//
// A Job is one torrent: its store (piecestore.Store), its sub-chief
// (swarm.Download, which owns the local peer swarm and the remote swarms),
// its tracker pipelines (tracker.Announcer) and, in a cluster, its work
// on swarm nodes (nodeLink: a delegate job on each node's shared session,
// back-off, quarantine by node identity). From Start until Close one goroutine, Job.run, owns the
// job's state — the tracker health record (trackerHealth, a passive
// value), the node link and the queue of events not yet read. It polls
// the sub-chief's status every StatusInterval without blocking, and never
// waits for the reader of Events: events queue, Progress coalesced. Node
// dials and session closes run on goroutines of their own that report
// back to Job.run on a channel.
//
// # Incoming connections
//
// The router (router.go) owns the peer listener and the table of
// torrents: Job.Start registers its info-hash (a second job for the same
// torrent gets ErrTorrentRunning) and gets a jobListener, a net.Listener
// that its local swarm (peerswarm) accepts on as it would on a real one;
// its Close, when the swarm shuts down, takes the torrent off the table.
// router.acceptLoop hands each connection to router.run, which starts
// router.identifyConn on a goroutine of its own: identifyPlain reads the
// handshake up to the info-hash (48 bytes) under IncomingConfig.Timeout.
// router.route then hands the connection, as a routedConn that replays
// those bytes, to the torrent's jobListener, or closes it if no job runs
// the torrent. The swarm reads the whole handshake and applies its own
// per-address admission and bans as before.
//
// Everything a remote party can fill is bounded: connections being
// identified (MaxPending overall, MaxPendingPerIP per address or IPv6
// /64; over either the oldest pending one is evicted, so a slowloris
// cannot keep honest peers out), the time they may take (Timeout), and
// each job's queue of routed connections not yet accepted (Queue; over
// it the newcomer is closed). Coordinator.Incoming counts what became of
// them. The addresses of the cluster's swarm nodes (their gossip and
// delegate addresses, followed from membership: memberSources) get
// MaxPendingPerMember instead of MaxPendingPerIP (64, not 8), since a node
// starting many jobs dials us with many swarms at once; MaxPending still
// bounds all, and at MaxPending a stranger's pending connection is
// evicted before a member's. Only the cluster key makes a member, so no
// stranger gets the larger allowance.
//
// Identifying the torrent of a connection is the router's alone (the
// identifier type, chosen by Config.Encryption: identifierFor). A
// connection whose first 20 bytes are the BEP 3 protocol string is
// plaintext (refused under mse.Require); any other is answered as an MSE
// initiator (peerwire/mse, refused under mse.Off), its torrent found by
// HASH('req2', SKEY) among the routes, and the job's swarm gets the
// decrypting connection with the initial payload (the peer's BitTorrent
// handshake) replayed first. The identify Timeout bounds the whole MSE
// handshake too.
//
// # Peers
//
// A job's peers come from its trackers' peer lists (DESIGN point 11): one
// goroutine per tracker waits on its tracker.PeerWatch and sends the
// list, when it changes, to Job.run, which hands it to the sub-chief.
// While downloading with fewer than JobConfig.MorePeersBelow × MaxPeers
// peers connected, Job.run asks the trackers for more
// (tracker.Announcer.MorePeers) once per announce answered; each tracker
// announces no sooner than its min interval (and its back-off) allow.
//
// Job.Trackers reports each tracker for an API: its pipeline's status,
// the latency of its answers (the durations the watchdog's Fulfil
// measured, kept per tracker in the tracker health over the newest
// LatencySamples answers: the watchdog itself keeps histograms per kind,
// not per owner), its overdue packets and its peer list. The pipelines
// answer their part; the job's loop copies its own.
//
// # Alerts
//
// Coordinator.run hands each watchdog alert to the job whose torrent owns
// the packet (tracker and lease packets are owned by "<info-hash> <who>").
// On the job's loop a tracker's late request or schedule marks the
// tracker slow in the tracker health (it counts as not answering until it
// answers); a missed lease goes to the sub-chief (swarm.Download.LeaseAlert),
// which returns it to the pool and benches the worker when another worker
// can take it, and is counted by the node link; the user hears of both as
// an Overdue event — a tracker once until it answers. The watchdog is the
// only clock of a lease: the alert wakes the sub-chief, which asks the
// watchdog which of its leases are overdue (also on every status tick, so
// an alert the watchdog dropped because this loop lagged is not lost).
// A DHT query's alert (kind dht.QueryKind) goes to the DHT node, which
// asks the watchdog in the same way which of its queries are overdue.
//
// # Lifecycle
//
//	c, err := coordinator.New(cfg)          // listener, watchdog, trackers
//	job, err := c.OpenJob(jobCfg)           // one per torrent, many at once
//	err = job.Verify(ctx)                   // optional re-hash
//	err = job.Start(peers)                  // sub-chief, trackers, Job.run
//	member, err := c.JoinCluster(clusterCfg) // optional: swarm nodes get work
//	ev := <-job.Events()                    // ... until Completed or Failed
//	job.Close(); c.Close()
//
// Close stops in reverse: a job's work on nodes, its trackers (which hear
// "stopped"), its sub-chief (whose local swarm closes the job's listener,
// unregistering the torrent) and its store (which flushes and records
// what is verified); then the node sessions, the membership, the
// tracker client, the watchdog and the router with the listener.
//
// # Errors
//
// Errors keep their kinds for errors.Is/As: the store's are returned as
// they are, others are wrapped with a lowercase context ("trackers: ",
// "cluster: ", "verify: "); New's listener failure is a *ListenError.
//
// # Not yet
//
// The per-address caps on connected
// peers are each torrent's (peerswarm); the router's bound only pending
// connections.
//
// A node holds at most delegate.ServerConfig.MaxJobs torrents at once (8
// by default, and MaxJobsPerSession of one coordinator): a job over it
// hears NodeDialFailed (delegate.ErrNodeBusy) and retries after its
// back-off, which grows to 30 s, so with more active downloads than a
// node's cap some run without that node until a place frees and their
// retry comes. A node's MaxPeers is shared among the jobs running on it
// (MaxPeers divided by them, re-divided as jobs start and end), so a node
// with one torrent gives it every peer. An idle session
// stays open until its node leaves or the Coordinator closes.
//
// Piece reads from swarm nodes are watchdog packets
// (delegate.PieceKind): the Coordinator gives its watchdog to every
// delegate session (nodeSessions), and routeAlert hands their alerts to
// the job, which reports Overdue and wakes the node's RemoteSwarm
// (nodeLink.pieceLate); that ends the overdue read, and the node's job
// with it. Dialing a node and the hello are still bounded by the dialer's
// timeout and connection deadlines (delegate.ClientConfig.HandshakeTimeout):
// they come before there is a job to own a packet.
package coordinator
