package coordinator

import "flotilla/cluster"

// ClusterInfo is a snapshot of the cluster as the coordinator sees it.
type ClusterInfo struct {
	// Members are the live members, this coordinator included (Local).
	Members []cluster.Member
	// Stats are the membership's figures: whether the first join has
	// reached another member, and the latest join error.
	Stats cluster.Stats
	// Sessions are the delegate sessions to swarm nodes by delegate
	// address (Member.Meta.DelegateAddr); a node without one is absent.
	Sessions map[string]SessionState
}

// Cluster returns a snapshot of the cluster; ok is false before
// JoinCluster (and once the Coordinator is closed).
func (c *Coordinator) Cluster() (info ClusterInfo, ok bool) {
	var m *membership
	if !c.do(func() { m = c.members }) || m == nil {
		return ClusterInfo{}, false
	}
	return ClusterInfo{Members: m.c.Members(), Stats: m.c.Stats(), Sessions: m.sessions.states()}, true
}
