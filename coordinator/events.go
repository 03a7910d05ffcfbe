package coordinator

import "flotilla/swarm"

// Event is what a job reports to whoever follows it (Job.Events): one of
// Progress, Completed, Failed, TrackersSilent, Overdue, NodeDialFailed,
// NodeQuarantined and NodeRefused. The package prints nothing; turning an
// event into words for a terminal (or an API) is the follower's business.
type Event interface{ jobEvent() }

// Progress is the sub-chief's status, taken every StatusInterval and
// reported when it changed (sameStatus). When the follower reads more
// slowly, only the newest Progress waits for it.
type Progress struct{ Status swarm.Status }

// Completed: every piece is verified and durably written, the trackers
// have heard "completed" and the swarm nodes' sessions are being closed.
// Status is the final status. A job that seeds goes on serving uploads
// (and reporting Progress) until it is closed.
type Completed struct{ Status swarm.Status }

// Failed: the download stopped on a fatal error (a storage failure, for
// example). It is the job's last event; Err is the sub-chief's error.
type Failed struct{ Err error }

// NodeDialFailed: opening a delegate session to a swarm node, or the
// job's work on it, failed (Err matches delegate.ErrNodeBusy when the
// node runs its maximum of jobs); it is tried again after a back-off
// while the node stays a member.
type NodeDialFailed struct {
	Name, Addr string
	Err        error
}

// NodeQuarantined: the sub-chief quarantined a swarm node for delivering
// pieces that failed verification; no node at its addresses (Identity) is
// used again in this job.
type NodeQuarantined struct{ Name, Identity string }

// NodeRefused: a swarm node joined (or came back) at the addresses of a
// node quarantined earlier in this job, and is not used. Reported once per
// node.
type NodeRefused struct{ Name, Identity string }

func (Progress) jobEvent()        {}
func (Completed) jobEvent()       {}
func (Failed) jobEvent()          {}
func (TrackersSilent) jobEvent()  {}
func (Overdue) jobEvent()         {}
func (NodeDialFailed) jobEvent()  {}
func (NodeQuarantined) jobEvent() {}
func (NodeRefused) jobEvent()     {}
