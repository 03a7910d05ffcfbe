package swarm

import (
	"time"

	"flotilla/internal/rate"
	"flotilla/watchdog"
)

type workerSlot struct {
	w       Worker
	idx     int
	trusted bool // its Verified flag is believed, and its end fails the download (New's worker)
	alive   bool
	state   WorkerState // for Status: gone and quarantined stick
	taken   int         // pieces accepted from it (Status: exact, unlike its own snapshot)
	rate    rate.Meter
	bad     int
	closed  chan struct{} // fan-in finished
	// unreleased counts its EventPiece pieces not yet released (Release):
	// waiting for the storer or being stored.
	unreleased int
	// The lease deadline (leaseclock.go): while the worker holds pieces,
	// ticket is its watchdog packet, due LeaseTimeout after it was given
	// pieces or last delivered one; missed is the packet of a missed
	// deadline, until its bench ends or a late delivery fulfils it.
	ticket, missed watchdog.Ticket
	// misses counts consecutive missed deadlines; a benched worker (its
	// lease was returned for a miss) gets no pieces until benchEnd.
	misses   int
	benched  bool
	benchEnd time.Time
	// ask lists the pieces of a pending steal (Revoke without force) sent
	// at askAt; the pieces still held when it is answered or expires are
	// marked started (worth duplicating, not worth stealing).
	ask   []int
	askAt time.Time
	// assignedAt is when it was last assigned pieces; a probe leaves it
	// stealWait to start them.
	assignedAt time.Time
	// leaving: the worker said EventLeaving; it gets no more pieces.
	leaving bool
}

type slotEvent struct {
	slot int
	ev   WorkerEvent
	end  bool // the worker's event channel closed
}

func (d *Download) addSlot(w Worker, trusted bool) *workerSlot {
	idx := len(d.slots)
	for k, s := range d.slots {
		if s.idx >= 0 && !s.alive && s.state != WorkerQuarantined && d.lb.Held(k) == 0 && isClosed(s.closed) {
			idx = k // a finished worker's slot (nodes come and go)
			break
		}
	}
	if idx >= maxWorkers {
		d.log.Warn("too many workers; refusing", "worker", w.Name())
		go w.Close()
		return &workerSlot{w: w, idx: -1}
	}
	s := &workerSlot{w: w, idx: idx, trusted: trusted, alive: true, closed: make(chan struct{})}
	if idx == len(d.slots) {
		d.slots = append(d.slots, s)
	} else {
		d.slots[idx] = s
		d.peers.Forget(idx) // what the slot's last worker was given
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(s.closed)
		for ev := range w.Events() {
			select {
			case d.fanIn <- slotEvent{slot: idx, ev: ev}:
			case <-d.stopCh:
				return
			}
		}
		select {
		case d.fanIn <- slotEvent{slot: idx, end: true}:
		case <-d.stopCh:
		}
	}()
	return s
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// release tells the worker that one piece it delivered is off our hands
// (stored or dropped): the Release of the Worker contract.
func (s *workerSlot) release(piece int) {
	s.unreleased--
	s.w.Release(piece)
}
