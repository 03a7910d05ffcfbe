package service

import (
	"sort"

	"flotilla/coordinator"
)

// Nodes is the cluster as the daemon sees it, with what each member does
// for the daemon's jobs.
type Nodes struct {
	// Enabled is false when the daemon runs outside a cluster.
	Enabled bool `json:"enabled"`
	// Joined is set once a join reached another member; JoinError is the
	// latest join attempt's error.
	Joined    bool       `json:"joined"`
	JoinError string     `json:"join_error,omitempty"`
	Members   []NodeInfo `json:"members"`
}

// NodeInfo is one cluster member.
type NodeInfo struct {
	Name     string `json:"name"`
	Addr     string `json:"addr"` // gossip address
	Role     string `json:"role"` // "coordinator" or "swarmnode"
	Version  string `json:"version,omitempty"`
	Slots    int    `json:"slots"`
	Delegate string `json:"delegate_addr,omitempty"`
	Local    bool   `json:"local,omitempty"` // this daemon
	// Session is the daemon's delegate session to a swarm node: "open"
	// (usable: it can take jobs at once), "dialing", "failed: <error>", or
	// empty for a member without one (the daemon, another coordinator).
	Session string `json:"session,omitempty"`
	// Jobs are the running jobs this member works for, with its figures
	// in each (a swarm node's worker in the job's sub-chief).
	Jobs []NodeJob `json:"jobs"`
}

// NodeJob is a member's part in one job.
type NodeJob struct {
	ID string `json:"id"`
	WorkerInfo
}

// Nodes returns the cluster's members and what each does.
func (s *Service) Nodes() (Nodes, error) {
	ci, ok := s.eng.cluster()
	if !ok {
		return Nodes{Members: []NodeInfo{}}, nil
	}
	details, err := s.details(-1)
	if err != nil {
		return Nodes{}, err
	}
	return nodesOf(ci, details), nil
}

// nodesOf is the cluster ci with what each member does in the jobs'
// details.
func nodesOf(ci coordinator.ClusterInfo, details []JobDetail) Nodes {
	n := Nodes{Enabled: true, Joined: ci.Stats.Joined, Members: []NodeInfo{}}
	if ci.Stats.JoinErr != nil {
		n.JoinError = ci.Stats.JoinErr.Error()
	}
	for _, m := range ci.Members {
		ni := NodeInfo{Name: m.Name, Addr: m.Addr.String(), Role: string(m.Meta.Role), Version: m.Meta.Version,
			Slots: m.Meta.Slots, Delegate: m.Meta.DelegateAddr, Local: m.Local, Jobs: []NodeJob{}}
		if st, ok := ci.Sessions[m.Meta.DelegateAddr]; ok && !m.Local && m.Meta.DelegateAddr != "" {
			ni.Session = st.State
			if st.Err != nil {
				ni.Session += ": " + st.Err.Error()
			}
		}
		for _, d := range details {
			for _, w := range mergeWorkers(d.Workers) {
				if w.Name == m.Name {
					ni.Jobs = append(ni.Jobs, NodeJob{ID: d.ID, WorkerInfo: w})
				}
			}
		}
		n.Members = append(n.Members, ni)
	}
	sort.Slice(n.Members, func(a, b int) bool { return n.Members[a].Name < n.Members[b].Name })
	return n
}

// clusterReady reports whether the cluster, if configured, was joined.
func (s *Service) clusterReady() bool {
	if s.cfg.Cluster == nil {
		return true
	}
	ci, ok := s.eng.cluster()
	return ok && ci.Stats.Joined
}
