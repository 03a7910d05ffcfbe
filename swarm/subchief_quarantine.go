package swarm

// Identified is implemented by a Worker that can say who runs it by
// something that worker cannot change at will within a download: for a
// remote swarm node, the addresses the coordinator reaches it at (a node
// can rename itself or leave and rejoin, but not move to another host's
// address). The sub-chief keys quarantine by it, so that a worker caught
// delivering bad pieces is refused for the rest of the download under any
// name. Identity must not change over the worker's life and must not block.
//
// Workers that do not implement it (or return "") are quarantined as
// themselves only: a new Worker value starts with a clean record.
type Identified interface {
	Identity() string
}

// identityOf is w's Identity, or "" if it has none.
func identityOf(w Worker) string {
	if id, ok := w.(Identified); ok {
		return id.Identity()
	}
	return ""
}

// quarantine marks s quarantined for the rest of this download: its lease
// goes back to the pool, it is closed, and its identity (if it has one) is
// refused by AddWorker from now on. Its slot is never reused, so Status
// keeps reporting it as WorkerQuarantined.
func (d *Download) quarantine(s *workerSlot) {
	id := identityOf(s.w)
	d.log.Warn("worker quarantined", "worker", s.w.Name(), "identity", id)
	d.workerGone(s, errQuarantined)
	s.state = WorkerQuarantined
	if id != "" {
		if d.quarantined == nil {
			d.quarantined = map[string]bool{}
		}
		d.quarantined[id] = true
	}
}

// refuseQuarantined closes w and reports true if its identity was
// quarantined earlier in this download.
func (d *Download) refuseQuarantined(w Worker) bool {
	id := identityOf(w)
	if id == "" || !d.quarantined[id] {
		return false
	}
	d.log.Warn("refusing a worker quarantined earlier in this download", "worker", w.Name(), "identity", id)
	go w.Close()
	return true
}
