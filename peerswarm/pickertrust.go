package peerswarm

// claim reserves to distrusted peer k a piece in progress that no peer
// owns and nobody is downloading (its owner was banned or left, or it was
// started before any distrust): without it such a piece would wait for a
// trusted peer, for ever if only distrusted ones have it. The blocks
// others delivered are dropped, so that a failure of the piece is k's
// alone. It reports whether k now owns ap.
func (p *Picker) claim(ap *activePiece, k peerKey) bool {
	if k == noPeer || ap.owner != noPeer {
		return false
	}
	for b := range ap.blocks {
		if ap.blocks[b].nreq > 0 {
			return false
		}
	}
	ap.owner = k
	for b := range ap.blocks {
		if bs := &ap.blocks[b]; bs.received && bs.from != k {
			bs.received, bs.from = false, noPeer
			ap.received--
			ap.unrequested++
		}
	}
	return true
}

// mayDeliver reports whether k's blocks of ap are accepted: a piece
// reserved to a distrusted peer takes only its blocks, and a distrusted
// peer's blocks go only into its own pieces. O(1).
func (p *Picker) mayDeliver(ap *activePiece, k peerKey) bool {
	if ap.owner != noPeer {
		return ap.owner == k
	}
	if len(p.distrusted) == 0 {
		return true
	}
	_, d := p.distrusted[k]
	return !d
}

// Distrust restricts peer k to pieces of its own: from now on it is given
// only pieces no other peer is downloading, and other peers get no blocks
// of those. Pieces in progress that k has touched (requested or delivered a
// block of) and no other distrusted peer owns are reserved to it. Called
// once per distrusted peer, O(active pieces).
func (p *Picker) Distrust(k peerKey) {
	if p.distrusted == nil {
		p.distrusted = map[peerKey]struct{}{}
	}
	p.distrusted[k] = struct{}{}
	for _, ap := range p.list {
		if ap.owner != noPeer {
			continue
		}
		for b := range ap.blocks {
			if bs := &ap.blocks[b]; bs.from == k || bs.requestedBy(k) {
				ap.owner = k
				break
			}
		}
	}
}

// Trust lifts Distrust: k may join pieces in progress again and its
// pieces are open to other peers.
func (p *Picker) Trust(k peerKey) {
	if _, ok := p.distrusted[k]; !ok {
		return
	}
	delete(p.distrusted, k)
	for _, ap := range p.list {
		if ap.owner == k {
			ap.owner = noPeer
		}
	}
}
