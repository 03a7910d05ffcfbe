package delegate

import "flotilla/swarm"

// peerCapped is a worker whose peer cap can change while it runs
// (peerswarm.Swarm's SetMaxPeers, through localWorker). SetMaxPeers must
// not block.
type peerCapped interface {
	SetMaxPeers(n int)
}

// The node's peer budget (ServerConfig.Swarm.MaxPeers) follows the jobs
// running: each job's swarm gets MaxPeers divided by the jobs running on
// the node (at least 1), re-divided whenever a job takes or frees its
// place (takeJob, doneJob). One job has every peer; two have half each;
// when one ends the other gets the whole budget back. A lowered swarm
// drops its least useful peers at once (peerswarm.Swarm.SetMaxPeers), so
// the node holds at most MaxPeers peers (or one per job, if MaxPeers is
// smaller than the jobs) apart from connections being dropped.

// peerShare is one job's share of the node's peers now. s.mu is held.
func (s *Server) peerShare() int {
	return jobPeers(s.cfg.Swarm.MaxPeers, s.jobs)
}

// jobPeers is one job's share of maxPeers when jobs run: at least 1.
func jobPeers(maxPeers, jobs int) int { return max(1, maxPeers/max(1, jobs)) }

// reshare gives every running swarm the share of the peers in force. s.mu
// is held (SetMaxPeers never blocks).
func (s *Server) reshare() {
	n := s.peerShare()
	for w := range s.capped {
		w.SetMaxPeers(n)
	}
}

// addCapped counts w in the peer budget (if its cap can change) and gives
// it its share.
func (s *Server) addCapped(w swarm.Worker) {
	c, ok := w.(peerCapped)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.capped[c] = struct{}{}
	c.SetMaxPeers(s.peerShare())
}

// PeerShare is the peer cap each job's swarm has now (the node's MaxPeers
// divided by its running jobs).
func (s *Server) PeerShare() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peerShare()
}
