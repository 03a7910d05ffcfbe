package service

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"flotilla/piecestore"
)

// metrics exports the service's figures in Prometheus format. It is a
// prometheus.Collector: every scrape takes one snapshot of the registry
// from Service.run (the figures are the owner's, never a second copy).
type metrics struct {
	s *Service

	jobs, size, done, pieces, piecesDone        *prometheus.Desc
	down, up, downRate, upRate, peers, seeds    *prometheus.Desc
	storageWait                                 *prometheus.Desc
	wDown, wUp, wRate, wPeers, wDelivered       *prometheus.Desc
	wHashFails, wBanned, tOverdue, tLastOverdue *prometheus.Desc
	leaseReturns, disk, dupBytes                *prometheus.Desc
	tLatency, tAnswers, tOverduePackets, tPeers *prometheus.Desc
	tSwarm                                      *prometheus.Desc
	wdLatency, wdFulfilled, wdOverdue, wdPend   *prometheus.Desc
	clusterJoined, nodeUp, nodeSlots, nodeJobs  *prometheus.Desc
	nodeRate, nodeDelivered, nodeStates         *prometheus.Desc
	dhtNodes, dhtPending, dhtStored, dhtQueries *prometheus.Desc
	dhtLookups, dhtPeersFound, dhtAnnounces     *prometheus.Desc
	dhtPackets, dhtDropped                      *prometheus.Desc
}

// NewRegistry returns a Prometheus registry holding the service's metrics
// and the Go runtime's and process's (memory, CPU, descriptors).
func NewRegistry(s *Service) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newMetrics(s), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func newMetrics(s *Service) *metrics {
	job := []string{"id", "name"}
	worker := []string{"id", "worker"}
	tracker := []string{"id", "tracker"}
	d := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc("flotilla_"+name, help, labels, nil)
	}
	return &metrics{s: s,
		jobs:         d("jobs", "Jobs in each state.", []string{"state"}),
		size:         d("torrent_size_bytes", "The torrent's length.", job),
		done:         d("torrent_done_bytes", "Bytes verified and written.", job),
		pieces:       d("torrent_pieces", "Pieces in the torrent.", job),
		piecesDone:   d("torrent_pieces_done", "Pieces verified and written.", job),
		down:         d("torrent_downloaded_bytes_total", "Payload bytes received, over every run of the job.", job),
		up:           d("torrent_uploaded_bytes_total", "Payload bytes sent, over every run of the job.", job),
		downRate:     d("torrent_download_rate_bytes", "Payload bytes received per second.", job),
		upRate:       d("torrent_upload_rate_bytes", "Payload bytes sent per second.", job),
		peers:        d("torrent_peers", "Connected peers.", job),
		seeds:        d("torrent_seeds", "Connected peers that have every piece.", job),
		storageWait:  d("torrent_storage_wait_seconds_total", "How long the job's current run waited for the disk (back-pressure).", job),
		wDown:        d("worker_downloaded_bytes_total", "Payload bytes a swarm (local, or a swarm node) received in the job's current run.", worker),
		wUp:          d("worker_uploaded_bytes_total", "Payload bytes a swarm sent in the job's current run.", worker),
		wRate:        d("worker_download_rate_bytes", "Payload bytes a swarm receives per second.", worker),
		wPeers:       d("worker_peers", "A swarm's connected peers.", worker),
		wDelivered:   d("worker_pieces_delivered_total", "Pieces a swarm delivered that the sub-chief accepted, in the job's current run.", worker),
		wHashFails:   d("worker_hash_fails_total", "Pieces from a swarm that failed verification, in the job's current run.", worker),
		wBanned:      d("worker_banned_peers", "Peer addresses a swarm banned.", worker),
		tOverdue:     d("tracker_overdue_total", "A tracker's requests that passed the watchdog's deadline.", tracker),
		tLastOverdue: d("tracker_last_overdue_seconds", "How long a tracker's newest overdue request had waited.", tracker),

		leaseReturns: d("lease_returned_pieces_total", "Pieces the job's current run took back from a worker's lease to lease them again, by why.", []string{"id", "reason"}),
		dupBytes:     d("endgame_duplicated_bytes_total", "Length of the pieces the job's current run leased to a second swarm while another was fetching them (end game across swarms): at most this was fetched twice.", []string{"id"}),
		disk: d("disk_write_seconds", "How long the job's current run took to write each run of pieces (op=write) and to fdatasync each batch (op=sync).",
			[]string{"id", "op"}),
		tLatency: d("tracker_latency_seconds", "How long a tracker's answers took, as the watchdog measured them, over its newest answers (quantile 1: the slowest).",
			[]string{"id", "tracker", "quantile"}),
		tAnswers:        d("tracker_answers_total", "A tracker's answers measured in the job's current run.", tracker),
		tOverduePackets: d("tracker_overdue_packets_total", "A tracker's watchdog packets (requests, scheduled announces) that passed their deadline in the job's current run.", tracker),
		tPeers:          d("tracker_peers", "Peers in a tracker's up-to-date peer list.", tracker),
		tSwarm:          d("tracker_swarm_peers", "Seeders and leechers as a tracker last said.", []string{"id", "tracker", "kind"}),
		wdLatency: d("watchdog_latency_seconds", "Time from issue to fulfilment of the watchdog's packets, by kind (tracker.announce, lease, ...; quantile 1: the slowest).",
			[]string{"kind", "quantile"}),
		wdFulfilled: d("watchdog_fulfilled_total", "Watchdog packets fulfilled, by kind.", []string{"kind"}),
		wdOverdue:   d("watchdog_overdue_total", "Watchdog packets that passed their deadline, by kind.", []string{"kind"}),
		wdPend:      d("watchdog_pending", "Watchdog packets pending, by kind.", []string{"kind"}),

		clusterJoined: d("cluster_joined", "1 once the daemon joined its cluster (absent outside one).", nil),
		nodeUp:        d("node_up", "1 for each cluster member the daemon sees.", []string{"node", "role"}),
		nodeSlots:     d("node_slots", "The peer slots a cluster member advertises.", []string{"node"}),
		nodeJobs:      d("node_jobs", "Running jobs a cluster member works for.", []string{"node"}),
		nodeRate:      d("node_download_rate_bytes", "Payload bytes a cluster member receives per second, over the running jobs.", []string{"node"}),
		nodeDelivered: d("node_pieces_delivered", "Pieces a cluster member delivered to the running jobs, in their current runs.", []string{"node"}),
		nodeStates:    d("node_job_states", "A cluster member's running jobs by the sub-chief's view of it (active, benched, leaving, gone, quarantined).", []string{"node", "state"}),

		dhtNodes:   d("dht_nodes", "Contacts in the DHT node's routing table.", nil),
		dhtPending: d("dht_pending_queries", "KRPC queries the DHT node sent that await an answer.", nil),
		dhtStored:  d("dht_stored_peers", "Peers other nodes announced to ours, kept for get_peers.", nil),
		dhtQueries: d("dht_queries_total", "KRPC queries the DHT node sent, by method (ping, find_node, get_peers, announce_peer) and result (sent, answered, error: a KRPC error answer, timeout).",
			[]string{"method", "result"}),
		dhtLookups:    d("dht_lookups_total", "Iterative lookups (get_peers for a torrent, find_node to join and refresh) the DHT node ran.", nil),
		dhtPeersFound: d("dht_peers_found_total", "Peers the DHT node's get_peers lookups found (counted once per lookup).", nil),
		dhtAnnounces: d("dht_announces_total", "announce_peer accepted: by other nodes from ours (direction=sent), by ours from others (direction=received).",
			[]string{"direction"}),
		dhtPackets: d("dht_packets_total", "UDP datagrams the DHT node received (direction=in) and sent (direction=out).", []string{"direction"}),
		dhtDropped: d("dht_dropped_packets_total", "Datagrams the DHT node dropped, by reason: malformed, rate_limited (per-IP query limit), inbox_full, unknown_tx (an answer to no pending query), bad_token (announce_peer refused).",
			[]string{"reason"}),
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(m, ch) }

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	details, err := m.s.details(0)
	if err != nil {
		return // shutting down: an empty scrape
	}
	g, c := prometheus.GaugeValue, prometheus.CounterValue
	var emit emitFunc = func(desc *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, t, v, labels...)
	}
	states := map[string]int{StateQueued: 0, StateChecking: 0, StateDownloading: 0, StateSeeding: 0, StatePaused: 0, StateDone: 0, StateFailed: 0}
	for _, d := range details {
		states[d.State]++
		id, name := d.ID, d.Name
		emit(m.size, g, float64(d.Size), id, name)
		emit(m.done, g, float64(d.BytesDone), id, name)
		emit(m.pieces, g, float64(d.Pieces), id, name)
		emit(m.piecesDone, g, float64(d.PiecesDone), id, name)
		emit(m.down, c, float64(d.Downloaded), id, name)
		emit(m.up, c, float64(d.Uploaded), id, name)
		emit(m.downRate, g, d.DownRate, id, name)
		emit(m.upRate, g, d.UpRate, id, name)
		emit(m.peers, g, float64(d.Peers), id, name)
		emit(m.seeds, g, float64(d.Seeds), id, name)
		emit(m.storageWait, c, timeSeconds(d.StorageWait), id, name)
		for _, w := range mergeWorkers(d.Workers) {
			emit(m.wDown, c, float64(w.Downloaded), id, w.Name)
			emit(m.wUp, c, float64(w.Uploaded), id, w.Name)
			emit(m.wRate, g, w.DownRate, id, w.Name)
			emit(m.wPeers, g, float64(w.Peers), id, w.Name)
			emit(m.wDelivered, c, float64(w.Delivered), id, w.Name)
			emit(m.wHashFails, c, float64(w.HashFails), id, w.Name)
			emit(m.wBanned, g, float64(w.Banned), id, w.Name)
		}
		m.collectTrackers(emit, d)
		r := d.LeaseReturns
		for reason, n := range map[string]int{"missed": r.Missed, "gone": r.Gone, "bad_piece": r.BadPiece, "revoked": r.Revoked} {
			emit(m.leaseReturns, c, float64(n), id, reason)
		}
		emit(m.dupBytes, c, float64(d.EndGame.DuplicatedBytes), id)
		if d.disk != nil && d.disk.WriteLatency.Count > 0 { // 1000 seeding jobs write nothing: no 40,000 empty buckets
			ch <- diskHistogram(m.disk, d.disk.WriteLatency, id, "write")
			ch <- diskHistogram(m.disk, d.disk.SyncLatency, id, "sync")
		}
	}
	for st, n := range states {
		emit(m.jobs, g, float64(n), st)
	}
	m.collectNodes(emit, details)
	m.collectDHT(emit)
	for _, k := range m.s.eng.watchdog() {
		for q, v := range map[string]time.Duration{"0.5": k.Median, "0.99": k.P99, "1": k.Max} {
			emit(m.wdLatency, g, v.Seconds(), k.Kind, q)
		}
		emit(m.wdFulfilled, c, float64(k.Count), k.Kind)
		emit(m.wdOverdue, c, float64(k.Overdue), k.Kind)
		emit(m.wdPend, g, float64(k.Pending), k.Kind)
	}
}

type emitFunc func(desc *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string)

// collectTrackers emits a job's tracker figures: the reports of its
// events, and while it runs its trackers' live figures.
func (m *metrics) collectTrackers(emit emitFunc, d JobDetail) {
	g, c := prometheus.GaugeValue, prometheus.CounterValue
	for _, t := range d.Trackers {
		id, u := d.ID, t.URL
		emit(m.tOverdue, c, float64(t.Overdue), id, u)
		emit(m.tLastOverdue, g, timeSeconds(t.LastOverdue), id, u)
		if t.Latency == nil {
			continue // not running
		}
		l := t.Latency
		for q, v := range map[string]Duration{"0.5": l.P50, "0.9": l.P90, "1": l.Max} {
			emit(m.tLatency, g, timeSeconds(v), id, u, q)
		}
		emit(m.tAnswers, c, float64(l.Answers), id, u)
		emit(m.tOverduePackets, c, float64(t.OverduePackets), id, u)
		emit(m.tPeers, g, float64(t.PeersTotal), id, u)
		if t.Seeders != nil {
			emit(m.tSwarm, g, float64(*t.Seeders), id, u, "seeders")
		}
		if t.Leechers != nil {
			emit(m.tSwarm, g, float64(*t.Leechers), id, u, "leechers")
		}
	}
}

// diskHistogram is a store's latency histogram in Prometheus' form
// (cumulative buckets, in seconds).
func diskHistogram(desc *prometheus.Desc, l piecestore.Latency, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(piecestore.LatencyBounds))
	var cum uint64
	for i, b := range piecestore.LatencyBounds {
		cum += uint64(l.Counts[i])
		buckets[b.Seconds()] = cum
	}
	return prometheus.MustNewConstHistogram(desc, uint64(l.Count), l.Sum.Seconds(), buckets, labels...)
}

// mergeWorkers sums the figures of workers that share a name (a swarm
// node that left and came back is two workers of the sub-chief), since
// a metric's labels must be unique.
func mergeWorkers(ws []WorkerInfo) []WorkerInfo {
	out := make([]WorkerInfo, 0, len(ws))
	at := map[string]int{}
	for _, w := range ws {
		i, ok := at[w.Name]
		if !ok {
			at[w.Name] = len(out)
			out = append(out, w)
			continue
		}
		o := &out[i]
		o.Downloaded += w.Downloaded
		o.Uploaded += w.Uploaded
		o.DownRate += w.DownRate
		o.Peers += w.Peers
		o.Delivered += w.Delivered
		o.HashFails += w.HashFails
		o.Banned += w.Banned
	}
	return out
}

// collectNodes emits the cluster's members and their figures over the
// running jobs (nothing outside a cluster).
func (m *metrics) collectNodes(emit emitFunc, details []JobDetail) {
	ci, ok := m.s.eng.cluster()
	if !ok {
		return
	}
	g := prometheus.GaugeValue
	joined := 0.0
	if ci.Stats.Joined {
		joined = 1
	}
	emit(m.clusterJoined, g, joined)
	for _, n := range nodesOf(ci, details).Members {
		emit(m.nodeUp, g, 1, n.Name, n.Role)
		emit(m.nodeSlots, g, float64(n.Slots), n.Name)
		emit(m.nodeJobs, g, float64(len(n.Jobs)), n.Name)
		var rate float64
		var delivered int
		states := map[string]int{}
		for _, j := range n.Jobs {
			rate += j.DownRate
			delivered += j.Delivered
			states[j.State]++
		}
		emit(m.nodeRate, g, rate, n.Name)
		emit(m.nodeDelivered, g, float64(delivered), n.Name)
		for st, k := range states {
			emit(m.nodeStates, g, float64(k), n.Name, st)
		}
	}
}

// collectDHT emits the DHT node's figures (nothing without a DHT).
func (m *metrics) collectDHT(emit emitFunc) {
	s, ok := m.s.eng.dht()
	if !ok {
		return
	}
	g, c := prometheus.GaugeValue, prometheus.CounterValue
	emit(m.dhtNodes, g, float64(s.Nodes))
	emit(m.dhtPending, g, float64(s.Pending))
	emit(m.dhtStored, g, float64(s.Peers))
	for _, method := range []string{"ping", "find_node", "get_peers", "announce_peer"} {
		q := s.Queries[method] // zero when none was sent: every series exists from the start
		for result, v := range map[string]int64{"sent": q.Sent, "answered": q.Answered, "error": q.Errors, "timeout": q.TimedOut} {
			emit(m.dhtQueries, c, float64(v), method, result)
		}
	}
	emit(m.dhtLookups, c, float64(s.Lookups))
	emit(m.dhtPeersFound, c, float64(s.PeersFound))
	emit(m.dhtAnnounces, c, float64(s.AnnouncesMade), "sent")
	emit(m.dhtAnnounces, c, float64(s.Announced), "received")
	emit(m.dhtPackets, c, float64(s.Received), "in")
	emit(m.dhtPackets, c, float64(s.Sent), "out")
	for reason, v := range map[string]int64{"malformed": s.Malformed, "rate_limited": s.RateLimited, "inbox_full": s.Dropped,
		"unknown_tx": s.UnknownTx, "bad_token": s.BadToken} {
		emit(m.dhtDropped, c, float64(v), reason)
	}
}
