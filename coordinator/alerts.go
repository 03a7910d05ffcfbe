package coordinator

import (
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"flotilla/delegate"
	"flotilla/swarm"
	"flotilla/tracker"
	"flotilla/watchdog"
)

// Overdue reports that something a job waits for passed its watchdog
// deadline (DESIGN point 2): a tracker's request or scheduled announce
// (Tracker is set; the tracker is marked slow — not answering — until it
// answers, and keeps retrying on its own schedule), or a worker's lease
// (Worker is set: no piece delivered in time; the alert goes on to the
// sub-chief, which returns the lease to the pool and benches the worker
// when another worker can take the pieces), or a piece a swarm node was
// sending (Kind delegate.PieceKind, Worker and Node set: the piece did not
// arrive whole within delegate.ClientConfig's PieceTimeout plus its length
// at MinPieceRate; the node's job ends with delegate.ErrTooSlow and its
// lease returns to the pool). A tracker is reported once until it answers
// again; every missed lease and piece is reported.
type Overdue struct {
	// Kind is the watchdog packet's kind: tracker.KindConnect,
	// KindAnnounce, KindScrape or KindSchedule, swarm.LeaseKind, or
	// delegate.PieceKind.
	Kind string
	// Tracker is the tracker's URL, for a tracker packet.
	Tracker string
	// Worker is the worker's name for a lease: "local" (the local peer
	// swarm) or a swarm node's name.
	Worker string
	// Node is set when Worker is a swarm node of the job's cluster.
	Node bool
	// Waited is how long it had been pending when the watchdog noticed;
	// Late how far past its deadline that was.
	Waited, Late time.Duration
}

// ErrTrackerSlow is the error a TrackersSilent event gives for a tracker
// whose request passed its watchdog deadline without an answer or error.
var ErrTrackerSlow = errors.New("no answer before the watchdog's deadline")

// packetTorrent returns the info-hash that a tracker or lease packet's
// owner starts with ("<40 hex digits> <who>") and the rest.
func packetTorrent(owner string) (ih [20]byte, who string, ok bool) {
	h, who, found := strings.Cut(owner, " ")
	if !found || len(h) != 40 {
		return ih, "", false
	}
	if _, err := hex.Decode(ih[:], []byte(h)); err != nil {
		return ih, "", false
	}
	return ih, who, true
}

// routeAlert hands a watchdog alert to the job whose torrent owns the
// packet (called on the coordinator's goroutine); others are logged.
func (c *Coordinator) routeAlert(a watchdog.Alert) {
	if c.routeDHTAlert(a.Packet.Kind, a.Packet.Owner) {
		c.dht.QueryAlert(a)
		return
	}
	if ih, _, ok := packetTorrent(a.Packet.Owner); ok {
		for j := range c.jobs {
			if j.cfg.Torrent.InfoHash == ih {
				j.alert(a)
				return
			}
		}
	}
	c.log.Debug("overdue", "kind", a.Packet.Kind, "owner", a.Packet.Owner, "late", a.Late)
}

// alert hands the job an alert for one of its packets (called on the
// coordinator's goroutine).
func (j *Job) alert(a watchdog.Alert) {
	select {
	case j.cmds <- func() { j.overdue(a, time.Now()) }:
	case <-j.done:
	}
}

// overdue acts on an alert on the job's loop: a tracker is marked slow in
// the tracker health; a missed lease goes to the sub-chief, which decides
// whether to return it (swarm.Download.LeaseAlert), and is counted by the
// node link; the user hears of both as an Overdue event.
func (j *Job) overdue(a watchdog.Alert, now time.Time) {
	_, who, _ := packetTorrent(a.Packet.Owner)
	ev := Overdue{Kind: a.Packet.Kind, Late: a.Late, Waited: a.Packet.Deadline.Sub(a.Packet.Issued) + a.Late}
	switch a.Packet.Kind {
	case tracker.KindConnect, tracker.KindAnnounce, tracker.KindScrape, tracker.KindSchedule:
		ev.Tracker = who
		if j.health == nil || !j.health.slow(who, now) {
			return // reported already, until it answers
		}
	case swarm.LeaseKind:
		if j.dl != nil {
			j.dl.LeaseAlert(a)
		}
		ev.Worker = who
		ev.Node = j.link != nil && j.link.leaseMissed(who)
	case delegate.PieceKind:
		// The node's RemoteSwarm asks the watchdog which of its reads are
		// overdue and ends them: the job on that node fails (ErrTooSlow)
		// and the sub-chief returns its lease.
		ev.Worker = who
		ev.Node = j.link != nil && j.link.pieceLate(who, a)
	default:
		j.c.log.Debug("overdue", "kind", a.Packet.Kind, "owner", a.Packet.Owner, "late", a.Late)
		return
	}
	j.c.log.Info("overdue", "kind", ev.Kind, "tracker", ev.Tracker, "worker", ev.Worker, "late", ev.Late)
	j.emit(ev)
}
