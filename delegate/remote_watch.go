package delegate

import (
	"fmt"
	"time"

	"github.com/hashicorp/yamux"

	"flotilla/watchdog"
)

// Piece read deadlines. A piece a node sends must arrive whole within
// PieceTimeout plus its length at MinPieceRate. That deadline is a
// watchdog packet (DESIGN point 2: the watchdog is the one clock for
// pending work): each piece read is a PieceKind packet, issued when its
// header has been read, fulfilled when its last byte arrives, cancelled
// if the read ends otherwise. Its owner is "<info-hash hex> <node name>",
// so that the coordinator routes its alert to the job and the job to the
// RemoteSwarm (PieceAlert).
//
// The alert is a wake-up, as for leases (swarm/leaseclock.go): on it, and
// on every pieceCheckInterval tick of the job's run goroutine (alerts are
// dropped when their reader lags), checkReads asks the watchdog which of
// the job's reads are overdue (watchdog.Overdue, on the watchdog's clock)
// and ends each: a blocked Read cannot be woken otherwise, so the
// stream's read deadline is set to now, driven by the watchdog — no
// deadline is set before. The read then fails with ErrTooSlow and the
// job ends as before (its lease returns to the pool).
//
// The watchdog is ClientConfig.Watchdog (the coordinator's, whose alerts
// it routes); without one a Session starts a private watchdog and reads
// its alerts itself. Dialing and the hello (HandshakeTimeout) keep their
// connection deadlines: they happen before there is a job or a session to
// own a packet, and a dial's timeout is the dialer's own.

// PieceKind is the watchdog kind of piece reads from a swarm node.
const PieceKind = "delegate-piece"

// pieceCheckInterval is how often a job asks the watchdog about its piece
// reads without an alert (a dropped alert is recovered by then).
const pieceCheckInterval = time.Second

// privateWatchdog is the piece clock of a Session without
// ClientConfig.Watchdog: a small watchdog whose alerts only the Session
// reads.
func privateWatchdog() (*watchdog.Watchdog, error) {
	c := watchdog.DefaultConfig()
	c.AlertBuffer, c.MaxPending, c.MaxQueued, c.Shards = 16, 1<<16, 4096, 1
	c.History, c.MaxKinds = 0, 1
	wd, err := watchdog.New(c)
	if err != nil {
		return nil, fmt.Errorf("delegate: piece watchdog: %w", err)
	}
	return wd, nil
}

// routeAlerts reads a private watchdog's alerts and wakes the session's
// jobs (each asks about its own reads) until the session ends; then it
// closes the watchdog.
func (s *Session) routeAlerts() {
	defer s.wg.Done()
	defer s.wd.Close()
	for {
		select {
		case a := <-s.wd.Alerts():
			s.mu.Lock()
			for _, r := range s.jobs {
				r.PieceAlert(a)
			}
			s.mu.Unlock()
		case <-s.dead:
			return
		}
	}
}

// PieceAlert hands the job a watchdog alert for one of its piece reads
// (PieceKind); whoever reads ClientConfig.Watchdog's alerts routes them
// here. It wakes the job, which asks the watchdog at once which of its
// reads are overdue and ends them; other kinds are ignored. It never
// blocks.
func (r *RemoteSwarm) PieceAlert(a watchdog.Alert) {
	if a.Packet.Kind != PieceKind {
		return
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// startRead issues the packet of a piece read on st, due in limit; false
// if the job ended.
func (r *RemoteSwarm) startRead(st *yamux.Stream, limit time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failed {
		return false
	}
	r.reads[st] = r.wd.Issue(PieceKind, r.pktOwner, limit)
	return true
}

// endRead fulfils (the piece arrived) or cancels the packet of the read
// on st. A piece that arrived as checkReads cut its read clears the
// deadline it set, so that the next read is not cut with it.
func (r *RemoteSwarm) endRead(st *yamux.Stream, fulfilled bool) {
	r.mu.Lock()
	t := r.reads[st]
	delete(r.reads, st)
	if fulfilled && !r.failed {
		st.SetReadDeadline(time.Time{})
	}
	r.mu.Unlock()
	if fulfilled {
		r.wd.Fulfil(t)
	} else {
		r.wd.Cancel(t)
	}
}

// checkReads asks the watchdog which piece reads are overdue and ends
// each (its read deadline set to now wakes the blocked Read). It runs on
// the job's run goroutine, on an alert and on every tick.
func (r *RemoteSwarm) checkReads() {
	r.mu.Lock()
	sts := make([]*yamux.Stream, 0, len(r.reads))
	ts := make([]watchdog.Ticket, 0, len(r.reads))
	for st, t := range r.reads {
		sts, ts = append(sts, st), append(ts, t)
	}
	r.mu.Unlock()
	if len(ts) == 0 {
		return
	}
	late, err := r.wd.Overdue(ts)
	if err != nil {
		return // the watchdog closed: the process is shutting down
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, st := range sts {
		if late[i] && !r.failed && r.reads[st].ID == ts[i].ID {
			st.SetReadDeadline(time.Now()) // the read ends with ErrTooSlow
		}
	}
}
