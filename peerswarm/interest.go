package peerswarm

import (
	"time"

	"flotilla/internal/bitfield"
	"flotilla/peerwire"
)

// What each peer has, as the requester follows it: the picker's
// availability counts and our interest (a peer is interesting while it
// has a piece we lack, p.wanted > 0). Two seeds parting (errBothSeeds) is
// the Swarm's call (handleMsg).

// peerHas takes p's have of piece i, and reports whether it was news.
func (r *requester) peerHas(t *peerTable, p *peer, i int) bool {
	if p.has(i) {
		return false
	}
	if p.bf == nil {
		p.bf = bitfield.New(r.numPieces)
	}
	p.bf.Set(i)
	p.nhave++
	r.picker.avail.Have(i)
	if !r.picker.Have(i) {
		p.wanted++
		r.setInterested(t, p, true)
	}
	return true
}

// peerBitfield takes p's bitfield: normally its first message, but some
// clients (aria2) send have-none first and a bitfield later. A later
// bitfield replaces the old.
func (r *requester) peerBitfield(t *peerTable, p *peer, bf bitfield.Bitfield) {
	r.forgetPieces(p)
	p.gotBF = true
	p.bf = bf
	r.picker.avail.Bitfield(p.bf)
	for i := 0; i < r.numPieces; i++ {
		if p.bf.Has(i) {
			p.nhave++
			if !r.picker.Have(i) {
				p.wanted++
			}
		}
	}
	r.setInterested(t, p, p.wanted > 0)
}

// peerHasAll takes p's have-all (BEP 6).
func (r *requester) peerHasAll(t *peerTable, p *peer) {
	r.forgetPieces(p)
	p.gotBF, p.haveAll = true, true
	r.picker.avail.HaveAll()
	p.wanted = r.numPieces - r.picker.Done()
	r.setInterested(t, p, p.wanted > 0)
}

// forgetPieces drops what p announced so far from availability.
func (r *requester) forgetPieces(p *peer) {
	r.picker.avail.Gone(p.bf, p.haveAll)
	p.bf, p.haveAll, p.nhave, p.wanted = nil, false, 0, 0
}

// pieceDone updates interest once piece i is ours.
func (r *requester) pieceDone(t *peerTable, i int) {
	for p := range t.all() {
		if p.has(i) {
			p.wanted--
			if p.wanted <= 0 {
				r.setInterested(t, p, false)
			}
		}
	}
}

func (r *requester) setInterested(t *peerTable, p *peer, v bool) {
	if p.amInterested == v {
		return
	}
	p.amInterested = v
	id := peerwire.NotInterested
	if v {
		id = peerwire.Interested
	}
	t.send(p, peerwire.Message{ID: id})
}

// nudgeIfChoked: once every peer holding a piece of our lease has choked
// us for chokedNudge, it tells each of them again that we are interested
// (not interested, then interested), at most once per two chokedNudges a
// peer. aria2c, a common seeder, reassigns its slots only every 10 s and
// when a choked peer declares interest, ranking first the peers it
// unchoked last that still have requests queued; every host of a cluster
// is interested in every seeder, and a host that lost its slots at every
// seeder in the first rounds sat idle until the next periodic one (2 of
// 24 runs of 8 hosts: one host idle 11-12 s of 13). Telling it again puts
// the host in the draw for a seeder's optimistic slot. To a client whose
// choker does not look at interest changes, the two messages change
// nothing.
func (r *requester) nudgeIfChoked(now time.Time, t *peerTable) {
	if r.chokedNudge <= 0 {
		return
	}
	// Only peers holding a piece of the lease count: a node's swarm is
	// interested in the cluster's other hosts, which hold pieces it lacks
	// and unchoke it, but none of those pieces is its to fetch; counting
	// them kept a node choked by every seeder from ever telling them
	// again (2 of 5 8-host runs: one node idle 10 s of 13). Serves scans
	// the pieces, so it runs once per peer a tick.
	choking := r.nudgeBuf[:0]
	defer func() { clear(choking); r.nudgeBuf = choking[:0] }()
	for p := range t.all() {
		if !p.amInterested || !r.picker.Serves(p.has) {
			continue
		}
		if !p.peerChoking {
			r.chokedSince = time.Time{}
			return
		}
		choking = append(choking, p)
	}
	if len(choking) == 0 {
		r.chokedSince = time.Time{}
		return
	}
	if r.chokedSince.IsZero() {
		r.chokedSince = now
	}
	if now.Sub(r.chokedSince) < r.chokedNudge {
		return
	}
	for _, p := range choking {
		if now.Sub(p.nudged) < 2*r.chokedNudge {
			continue
		}
		p.nudged = now
		r.log.Debug("choked by every peer we want from: telling it again we are interested", "peer", p.addr, "choked_for", now.Sub(r.chokedSince))
		t.send(p, peerwire.Message{ID: peerwire.NotInterested}, peerwire.Message{ID: peerwire.Interested})
	}
}
