package delegate

import (
	"time"

	"flotilla/swarm"
)

// The status report both ways: a node turns its worker's WorkerStatus into
// a statusMsg, the coordinator's RemoteSwarm turns it back. Both mappings
// live here so that a field added to one is added to the other
// (TestStatusMsgRoundTrip fails on a field that does not travel).

// newStatusMsg is the report a node sends about job.
func newStatusMsg(job uint64, st swarm.WorkerStatus) *statusMsg {
	return &statusMsg{Job: job, Peers: st.Peers, Seeds: st.Seeds,
		DownRate: st.DownRate, UpRate: st.UpRate, Downloaded: st.Downloaded, Uploaded: st.Uploaded,
		Wasted: st.Wasted, Leased: st.Leased, Active: st.Active, Delivered: st.Delivered,
		HashFails: st.HashFails, Banned: st.Banned, Outstanding: st.Outstanding, TimedOut: st.TimedOut,
		Snubbed: st.Snubbed, MaxPeers: st.MaxPeers}
}

// workerStatus is the coordinator's view of a report from node name,
// received at updated; the rates are sanitized (a node may send NaN).
func (m *statusMsg) workerStatus(name string, updated time.Time) swarm.WorkerStatus {
	return swarm.WorkerStatus{
		Name: name, Peers: m.Peers, Seeds: m.Seeds, DownRate: rate(m.DownRate), UpRate: rate(m.UpRate),
		Downloaded: m.Downloaded, Uploaded: m.Uploaded, Wasted: m.Wasted, Leased: m.Leased,
		Active: m.Active, Delivered: m.Delivered, HashFails: m.HashFails, Banned: m.Banned,
		Outstanding: m.Outstanding, TimedOut: m.TimedOut, Snubbed: m.Snubbed, MaxPeers: m.MaxPeers, Updated: updated,
	}
}
