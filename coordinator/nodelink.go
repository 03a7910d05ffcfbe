package coordinator

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"flotilla/cluster"
	"flotilla/delegate"
	"flotilla/metainfo"
	"flotilla/swarm"
	"flotilla/watchdog"
)

// nodeDialTimeout bounds opening one delegate session, and a job on it.
const nodeDialTimeout = 15 * time.Second

// nodeLink is a job's side of the cluster: it follows membership, opens a
// delegate job on every swarm node that joins (including later joiners
// and nodes that come back), over the Coordinator's one session to that
// node (nodeSessions), and hands the resulting remote swarms to the
// sub-chief. Back-off, quarantine and node identity are the link's, per
// node: a job refused (the node runs its maximum of jobs, ErrNodeBusy)
// or a session that dropped is retried after the back-off. It is driven by the job's loop only; dials run on
// their own goroutines and report back on dialed. What the user should
// hear of goes out through emit.
type nodeLink struct {
	m      *membership
	job    delegate.JobSpec
	log    *slog.Logger
	emit   func(Event)
	nodes  map[string]*remoteNode
	dialed chan dialResult
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// dl is the sub-chief the sessions were handed to (dialDone): from
	// then on it owns them, and only it closes them (RemoveWorker).
	dl   *swarm.Download
	done bool // the download completed: no more sessions
	// quarantined holds the identities (nodeIdentity) of nodes the
	// sub-chief quarantined: never dialed again in this job, whatever name
	// they come back under.
	quarantined map[string]bool
	// expect tells the sub-chief how many sessions are being opened
	// (swarm.Download.ExpectWorkers), so that the first nodes to join do
	// not take most of the known peers; nil in tests without one.
	expect   func(int)
	expected int // the figure last told
}

type remoteNode struct {
	addr     string
	id       string // nodeIdentity
	rs       *delegate.RemoteSwarm
	w        swarm.Worker // rs as handed to the sub-chief
	dialing  bool
	refused  bool // NodeRefused reported
	failures int
	missed   int // lease deadlines missed in this session (watchdog alerts)
	nextTry  time.Time
}

type dialResult struct {
	name, addr, id string
	rs             *delegate.RemoteSwarm
	err            error
}

// nodeIdentity is what quarantine is keyed by: the addresses a node is
// reached at (its delegate endpoint and its gossip address), without
// ports. A node can rename itself, leave and rejoin, or restart on other
// ports at will, but not move its host's addresses within a download.
// Nodes sharing a host (and its addresses) share a quarantine.
func nodeIdentity(m cluster.Member) string {
	host := m.Meta.DelegateAddr
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.Unmap().String()
	}
	return "delegate=" + host + " gossip=" + m.Addr.Addr().Unmap().String()
}

// nodeSwarm is a remote swarm that names its node's identity to the
// sub-chief (swarm.Identified), which keys quarantine by it.
type nodeSwarm struct {
	*delegate.RemoteSwarm
	id string
}

func (w nodeSwarm) Identity() string { return w.id }

var _ swarm.Identified = nodeSwarm{}

// newNodeLink links a job for torrent t, whose peers connect to peer, to
// the membership m.
func newNodeLink(m *membership, t *metainfo.Torrent, peer *net.TCPAddr, log *slog.Logger, emit func(Event)) *nodeLink {
	// Nodes get the coordinator as a peer too: at the address they reach
	// it by when the peer listener is bound to every address.
	peerHost := peer.IP.String()
	if peer.IP.IsUnspecified() {
		peerHost = m.c.Addr().Addr().String()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &nodeLink{
		m: m,
		job: delegate.JobSpec{
			InfoHash:            t.InfoHash,
			InfoBytes:           t.InfoBytes,
			Trackers:            t.Tiers(),
			CoordinatorPeerAddr: net.JoinHostPort(peerHost, strconv.Itoa(peer.Port)),
		},
		log:         log,
		emit:        emit,
		nodes:       map[string]*remoteNode{},
		quarantined: map[string]bool{},
		dialed:      make(chan dialResult),
		ctx:         ctx,
		cancel:      cancel,
	}
}

func isNode(m cluster.Member) bool {
	return m.Meta.Role == cluster.RoleSwarmNode && m.Meta.DelegateAddr != "" && !m.Local
}

// memberEvent reacts to a membership change.
func (l *nodeLink) memberEvent(ev cluster.Event) {
	m := ev.Member
	if !isNode(m) {
		return
	}
	switch ev.Kind {
	case cluster.EventJoin, cluster.EventUpdate:
		n := l.nodes[m.Name]
		if n == nil {
			n = &remoteNode{}
			l.nodes[m.Name] = n
		}
		if n.addr != m.Meta.DelegateAddr {
			n.addr, n.failures, n.nextTry = m.Meta.DelegateAddr, 0, time.Time{}
		}
		n.id = nodeIdentity(m)
		l.maybeDial(m.Name, n, time.Now())
	case cluster.EventLeave, cluster.EventFail:
		n := l.nodes[m.Name]
		delete(l.nodes, m.Name)
		l.tellExpected()
		if n != nil && n.rs != nil {
			l.log.Info("swarm node gone; its lease returns to the pool", "node", m.Name, "event", ev.Kind)
			l.remove(n) // the sub-chief sees its events end and takes the lease back
		} else {
			l.log.Info("swarm node gone", "node", m.Name, "event", ev.Kind)
		}
	}
}

// maybeDial opens a session to n unless one is open, being opened, or
// the last attempt failed too recently.
func (l *nodeLink) maybeDial(name string, n *remoteNode, now time.Time) {
	if l.quarantined[n.id] {
		if !n.refused {
			n.refused = true
			l.emit(NodeRefused{Name: name, Identity: n.id})
		}
		return
	}
	if l.done || n.rs != nil || n.dialing || now.Before(n.nextTry) {
		return
	}
	n.dialing = true
	l.tellExpected()
	addr, id := n.addr, n.id
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		ctx, cancel := context.WithTimeout(l.ctx, nodeDialTimeout)
		defer cancel()
		rs, err := l.m.sessions.openJob(ctx, addr, l.job)
		select {
		case l.dialed <- dialResult{name: name, addr: addr, id: id, rs: rs, err: err}:
		case <-l.ctx.Done():
			if rs != nil {
				rs.Close()
			}
		}
	}()
}

// tellExpected tells the sub-chief how many sessions are being opened,
// when that changed.
func (l *nodeLink) tellExpected() {
	n := 0
	for _, nd := range l.nodes {
		if nd.dialing {
			n++
		}
	}
	if n != l.expected && l.expect != nil {
		l.expected = n
		l.expect(n)
	}
}

// leaseMissed records a watchdog alert for the lease of worker name, and
// reports whether that worker is one of the link's swarm nodes. The
// sub-chief has returned the lease and benched the node if another
// worker could take the pieces.
func (l *nodeLink) leaseMissed(name string) bool {
	for _, n := range l.nodes {
		if n.rs != nil && n.rs.Name() == name {
			n.missed++
			l.log.Warn("swarm node missed its lease deadline", "node", name, "misses", n.missed)
			return true
		}
	}
	return false
}

// pieceLate hands a watchdog alert for a piece read to the remote swarm
// of node name, which ends the overdue read, and reports whether that
// node is one of the link's.
func (l *nodeLink) pieceLate(name string, a watchdog.Alert) bool {
	for _, n := range l.nodes {
		if n.rs != nil && n.rs.Name() == name {
			n.rs.PieceAlert(a)
			l.log.Warn("swarm node did not send a piece in time; ending its job", "node", name)
			return true
		}
	}
	return false
}

// dialDone hands a new remote swarm to the sub-chief.
func (l *nodeLink) dialDone(r dialResult, dl *swarm.Download) {
	n := l.nodes[r.name]
	if n != nil {
		n.dialing = false
	}
	l.tellExpected() // before AddWorker: the sub-chief counts the node once
	if r.err != nil {
		if n != nil {
			n.failures++
			n.nextTry = time.Now().Add(backoff(n.failures))
		}
		l.emit(NodeDialFailed{Name: r.name, Addr: r.addr, Err: r.err})
		return
	}
	if n == nil || n.addr != r.addr || l.done || l.quarantined[r.id] {
		l.closeAsync(r.rs) // left, moved, quarantined or no longer needed meanwhile
		return
	}
	n.rs, n.w, n.failures = r.rs, nodeSwarm{r.rs, r.id}, 0
	l.log.Info("delegating to swarm node", "node", r.name, "addr", r.addr, "identity", r.id)
	l.dl = dl
	dl.AddWorker(n.w)
}

// tick takes the sub-chief's quarantine verdicts from its status, notices
// sessions that dropped and re-dials nodes that are still members.
func (l *nodeLink) tick(now time.Time, st swarm.Status) {
	l.takeVerdicts(st)
	for _, m := range l.m.c.Members() {
		if !isNode(m) || m.State != cluster.StateAlive {
			continue
		}
		n := l.nodes[m.Name]
		if n == nil {
			n = &remoteNode{addr: m.Meta.DelegateAddr}
			l.nodes[m.Name] = n
		}
		n.id = nodeIdentity(m)
		if n.rs != nil && l.quarantined[n.id] {
			n.rs, n.w = nil, nil // the sub-chief closed it
			n.refused = true
			continue
		}
		if n.rs != nil && errors.Is(n.rs.Err(), delegate.ErrNodeLeft) {
			// Stopped cleanly: it shipped what it finished and leaves the
			// cluster next; a restarted node is dialed after a pause.
			l.log.Info("swarm node left cleanly", "node", m.Name)
			n.rs, n.w = nil, nil
			n.nextTry = now.Add(leftPause)
		}
		if n.rs != nil && n.rs.Err() != nil {
			l.log.Info("session to swarm node dropped", "node", m.Name, "err", n.rs.Err())
			n.rs, n.w = nil, nil
			n.failures++
			n.nextTry = now.Add(backoff(n.failures))
		}
		l.maybeDial(m.Name, n, now)
	}
}

// takeVerdicts records the sub-chief's new quarantine verdicts, each
// reported once.
func (l *nodeLink) takeVerdicts(st swarm.Status) {
	for _, w := range st.Workers {
		if w.State != swarm.WorkerQuarantined || w.Identity == "" || l.quarantined[w.Identity] {
			continue
		}
		l.quarantined[w.Identity] = true
		l.emit(NodeQuarantined{Name: w.Name, Identity: w.Identity})
	}
}

// leftPause is how long a node that left a job cleanly (it is stopping)
// is not dialed again while it is still a member.
const leftPause = 5 * time.Second

// backoff is the wait before dialing a node again after failures in a
// row: 1 s doubling to 30 s.
func backoff(failures int) time.Duration {
	d := 500 * time.Millisecond << min(failures, 6)
	return min(d, 30*time.Second)
}

// stopRemotes ends every session once the download is complete.
func (l *nodeLink) stopRemotes() {
	l.done = true
	for _, n := range l.nodes {
		if n.rs != nil {
			l.remove(n)
			n.rs = nil
		}
	}
}

// keepSeeding keeps the nodes' jobs once a seeding download is complete:
// the sub-chief keeps their workers (its download goes on, Seed), each
// node's swarm seeds the pieces it holds (the coordinator's Have for every
// piece told it they are stored), and close ends them when the job is
// closed. A node that delivered nothing holds nothing and is let go, and
// no node is dialed any more.
func (l *nodeLink) keepSeeding() {
	l.done = true
	if l.dl == nil {
		return // no node ever took part
	}
	delivered := map[string]int{}
	for _, w := range l.dl.Status().Workers {
		delivered[w.Name] += w.Delivered
	}
	kept := 0
	for _, n := range l.nodes {
		switch {
		case n.rs == nil:
		case delivered[n.rs.Name()] == 0:
			l.remove(n)
			n.rs = nil
		default:
			kept++
		}
	}
	l.log.Info("download complete; the swarm nodes keep seeding what they hold", "nodes", kept)
}

// remove has the sub-chief close n's session (it owns it) and take its
// lease back.
func (l *nodeLink) remove(n *remoteNode) {
	l.dl.RemoveWorker(n.w)
	n.w = nil
}

// closeAsync closes a remote swarm not handed to the sub-chief (its node
// hears Cancel) without holding up the loop.
func (l *nodeLink) closeAsync(rs *delegate.RemoteSwarm) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		rs.Close()
	}()
}

// close ends every session and waits for dials and closes in flight. The
// membership is the coordinator's: it stays.
func (l *nodeLink) close() {
	l.stopRemotes()
	l.cancel()
	l.wg.Wait()
}
