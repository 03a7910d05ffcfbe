package delegate

import (
	"net/netip"
	"slices"
	"time"

	"flotilla/swarm"
)

// Peers (type 17): the peers a node's swarm learned through PEX go to the
// coordinator, whose sub-chief adds them to its peer sources and deals
// them to its workers (the coordinator's own swarm included), as peers
// from a tracker. The node batches them: at most MaxPeersPerMsg per
// message and one message per job every PeersInterval; what comes
// meanwhile beyond MaxPeersPerMsg is dropped (PEX repeats). A coordinator
// takes at most one Peers message per job per PeersInterval/2 and ignores
// the others, and ignores them all for a private torrent (whose swarms
// take no PEX). Sent only to a coordinator whose hello lists CapPeers.
const (
	MaxPeersPerMsg = 256
	PeersInterval  = 2 * time.Second
)

// peerBatch is a node job's peers waiting for their Peers message; owned
// by the job's pump goroutine.
type peerBatch struct {
	addrs []netip.AddrPort
	seen  map[netip.AddrPort]bool
	last  time.Time // when the last message went
}

// add keeps addrs (new ones, within MaxPeersPerMsg).
func (b *peerBatch) add(addrs []netip.AddrPort) {
	if b.seen == nil {
		b.seen = map[netip.AddrPort]bool{}
	}
	for _, a := range addrs {
		if len(b.addrs) >= MaxPeersPerMsg {
			return
		}
		if a.IsValid() && a.Port() != 0 && !b.seen[a] {
			b.seen[a] = true
			b.addrs = append(b.addrs, a)
		}
	}
}

// take returns the message due at now, if any.
func (b *peerBatch) take(job uint64, now time.Time) (*addPeersMsg, bool) {
	if len(b.addrs) == 0 || now.Sub(b.last) < PeersInterval {
		return nil, false
	}
	m := &addPeersMsg{Job: job, Addrs: make([]string, len(b.addrs))}
	for i, a := range b.addrs {
		m.Addrs[i] = a.String()
	}
	b.addrs, b.last = b.addrs[:0], now
	clear(b.seen)
	return m, true
}

// learned passes the peers a node's Peers message names to the
// sub-chief (swarm.EventPeers): within the rate and MaxPeersPerMsg, never
// for a private torrent. Called by the session's control reader.
func (r *RemoteSwarm) learned(m *addPeersMsg, now time.Time) {
	if r.info.Private || (!r.peersHeard.IsZero() && now.Sub(r.peersHeard) < PeersInterval/2) {
		return
	}
	r.peersHeard = now
	var addrs []netip.AddrPort
	for _, s := range m.Addrs[:min(len(m.Addrs), MaxPeersPerMsg)] {
		if a, err := netip.ParseAddrPort(s); err == nil && a.Port() != 0 {
			addrs = append(addrs, netip.AddrPortFrom(a.Addr().Unmap(), a.Port()))
		}
	}
	if len(addrs) == 0 {
		return
	}
	r.log.Debug("peers learned by the node", "n", len(addrs))
	select {
	case r.ctrlIn <- swarm.WorkerEvent{Kind: swarm.EventPeers, Addrs: addrs}:
	case <-r.dead:
	}
}

// takesPeers reports whether a coordinator's hello lists CapPeers.
func takesPeers(h helloMsg) bool { return slices.Contains(h.Caps, CapPeers) }
