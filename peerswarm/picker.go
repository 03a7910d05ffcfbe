package peerswarm

import (
	"math/rand/v2"
)

// peerKey identifies a peer connection inside one peer swarm. The picker
// never dereferences it; it only remembers who requested and who delivered.
type peerKey int32

const noPeer peerKey = -1

// maxDup is the largest number of peers one block may be requested from at
// once (only in end game; otherwise a block has at most one requester).
const maxDup = 3

// pieceState is the picker's view of a piece.
type pieceState uint8

const (
	pieceMissing   pieceState = iota // not held, not being downloaded
	pieceActive                      // some blocks requested or received
	pieceVerifying                   // every block received, hash pending
	pieceDone                        // verified (held by us)
)

// Block names one block request: a piece, the block's offset and length.
type Block struct {
	Piece  int
	Begin  int
	Length int
}

type blockState struct {
	received bool
	nreq     int8
	reqBy    [maxDup]peerKey
	from     peerKey // who delivered it (hash-fail accounting)
}

type activePiece struct {
	index       int
	blocks      []blockState
	received    int
	unrequested int
	// owner is the distrusted peer this piece is reserved to (noPeer: none):
	// no other peer gets its blocks, and it gets no blocks of other pieces
	// in progress, so a failure of the piece is its alone.
	owner peerKey
}

// Picker is the passive piece and block picker of one peer swarm:
// rarest-first with random tie-break, priority for partially downloaded
// pieces, per-peer availability, leases and end game. It has no goroutines
// and does no I/O; its owner calls it from one goroutine.
type Picker struct {
	g      pickerGeometry
	state  []pieceState
	leased []bool
	avail  availability // fed by the owner as peers announce and leave
	active []*activePiece
	list   []*activePiece // active pieces with blocks, in activation order
	rng    *rand.Rand
	free   []*activePiece // recycled
	nIdle  int            // leased pieces in state missing
	done   int
	// distrusted holds the peers that may only download pieces of their own
	// (Distrust); nil until the first.
	distrusted map[peerKey]struct{}

	// MaxActive bounds the pieces being downloaded at once (memory budget);
	// 0 means no bound. Held counts further piece buffers the owner holds
	// (being verified or handed on) against the same bound.
	MaxActive int
	Held      int
}

func newPicker(g pickerGeometry, seed uint64) *Picker {
	if g.BlockSize <= 0 {
		g.BlockSize = 16 * 1024
	}
	return &Picker{
		g:      g,
		state:  make([]pieceState, g.NumPieces),
		leased: make([]bool, g.NumPieces),
		avail:  newAvailability(g.NumPieces),
		active: make([]*activePiece, g.NumPieces),
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
}

// Done reports how many pieces are verified.
func (p *Picker) Done() int { return p.done }

// Have reports whether piece i is verified.
func (p *Picker) Have(i int) bool { return i >= 0 && i < len(p.state) && p.state[i] == pieceDone }

// State returns the picker's state of piece i.
func (p *Picker) State(i int) pieceState { return p.state[i] }

// SetDone marks piece i verified (downloaded here, found on disk or
// delivered by another worker). It drops any download state; the caller
// cancels outstanding requests for the piece.
func (p *Picker) SetDone(i int) {
	if i < 0 || i >= len(p.state) || p.state[i] == pieceDone {
		return
	}
	p.dropActive(i)
	if p.leased[i] && p.state[i] == pieceMissing {
		p.nIdle--
	}
	p.leased[i] = false
	p.state[i] = pieceDone
	p.done++
}

// Lease adds pieces to the set this swarm may download. Pieces already
// done are ignored.
func (p *Picker) Lease(pieces []int) {
	for _, i := range pieces {
		if i < 0 || i >= len(p.state) || p.leased[i] || p.state[i] == pieceDone {
			continue
		}
		p.leased[i] = true
		if p.state[i] == pieceMissing {
			p.nIdle++
		}
	}
}

// Leased reports whether piece i is in the lease.
func (p *Picker) Leased(i int) bool { return p.leased[i] }

// Revoke removes pieces from the lease and returns those actually taken
// back (out) and, without force, those it keeps in the lease because they
// are started (kept). Without force, pieces with download progress stay
// (they are nearly free to finish); with force they are abandoned and the
// caller cancels their outstanding requests. A piece being verified
// always stays, unreported under force: the hash result settles it.
func (p *Picker) Revoke(pieces []int, force bool) (out, kept []int) {
	for _, i := range pieces {
		if i < 0 || i >= len(p.state) || !p.leased[i] {
			continue
		}
		switch p.state[i] {
		case pieceMissing:
			p.nIdle--
		case pieceActive:
			if !force {
				kept = append(kept, i)
				continue
			}
			p.dropActive(i) // back to missing, counted idle
			p.nIdle--
		case pieceVerifying:
			if !force {
				kept = append(kept, i)
			}
			continue
		}
		p.leased[i] = false
		out = append(out, i)
	}
	return out, kept
}

func (p *Picker) dropActive(i int) {
	ap := p.active[i]
	if ap == nil {
		return
	}
	p.active[i] = nil
	for k, x := range p.list {
		if x == ap {
			p.list = append(p.list[:k], p.list[k+1:]...)
			break
		}
	}
	if p.state[i] != pieceDone {
		p.state[i] = pieceMissing
		if p.leased[i] {
			p.nIdle++
		}
	}
	p.free = append(p.free, ap)
}

// Pick appends to dst up to n blocks for peer k to request, marking them
// requested by k. has reports whether the peer may serve a piece (its
// bitfield, restricted to allowed-fast pieces while it chokes us).
// Partially downloaded pieces come first, then the rarest leased piece
// (random tie-break); in end game, blocks already requested from others:
// those of the most recently started piece first, its last blocks first
// (a peer's stuck old blocks are left to the request timeout).
func (p *Picker) Pick(k peerKey, has func(int) bool, n int, dst []Block) []Block {
	if n <= 0 {
		return dst
	}
	owner := noPeer // the owner of a piece k may join: none, unless k is distrusted
	if p.distrusted != nil {
		if _, ok := p.distrusted[k]; ok {
			owner = k
		}
	}
	// 1. Partially downloaded pieces.
	for _, ap := range p.list {
		if ap.unrequested == 0 || !has(ap.index) || ap.owner != owner && !p.claim(ap, owner) {
			continue
		}
		dst, n = p.take(ap, k, n, dst)
		if n == 0 {
			return dst
		}
	}
	// 2. New pieces, rarest first.
	for n > 0 && p.nIdle > 0 {
		if p.MaxActive > 0 && len(p.list)+p.Held >= p.MaxActive {
			return dst
		}
		i := p.rarest(has)
		if i < 0 {
			break
		}
		ap := p.activate(i)
		ap.owner = owner
		dst, n = p.take(ap, k, n, dst)
	}
	if n == 0 || !p.EndGame() {
		return dst
	}
	// 3. End game: duplicate outstanding blocks, the last requested first.
	// Another peer sends its requests in order: the head of its queue is
	// already on the wire, where a copy only wastes bytes, while the tail
	// it reaches last, after our cancel (sent when this copy arrives).
	for j := len(p.list) - 1; j >= 0; j-- {
		ap := p.list[j]
		if ap.owner != owner || !has(ap.index) || p.state[ap.index] != pieceActive {
			continue
		}
		for b := len(ap.blocks) - 1; b >= 0; b-- {
			bs := &ap.blocks[b]
			if bs.received || int(bs.nreq) >= maxDup || bs.requestedBy(k) {
				continue
			}
			bs.reqBy[bs.nreq] = k
			bs.nreq++
			dst = append(dst, Block{ap.index, b * p.g.BlockSize, p.g.blockLen(ap.index, b)})
			if n--; n == 0 {
				return dst
			}
		}
	}
	return dst
}

// EndGame reports whether every block of the lease is requested or
// received, so that duplicate requests are worth their waste.
func (p *Picker) EndGame() bool {
	if p.nIdle > 0 {
		return false
	}
	for _, ap := range p.list {
		if ap.unrequested > 0 {
			return false
		}
	}
	return len(p.list) > 0
}

// Wanted reports whether the lease still holds pieces to start or blocks
// to request.
func (p *Picker) Idle() int { return p.nIdle }

// ActiveCount is the number of pieces with blocks in flight or held.
func (p *Picker) ActiveCount() int { return len(p.list) }

func (bs *blockState) requestedBy(k peerKey) bool {
	for j := 0; j < int(bs.nreq); j++ {
		if bs.reqBy[j] == k {
			return true
		}
	}
	return false
}

func (p *Picker) take(ap *activePiece, k peerKey, n int, dst []Block) ([]Block, int) {
	for b := range ap.blocks {
		if ap.unrequested == 0 || n == 0 {
			break
		}
		bs := &ap.blocks[b]
		if bs.received || bs.nreq > 0 {
			continue
		}
		bs.reqBy[0] = k
		bs.nreq = 1
		ap.unrequested--
		n--
		dst = append(dst, Block{ap.index, b * p.g.BlockSize, p.g.blockLen(ap.index, b)})
	}
	return dst, n
}

// Serves reports whether a peer that holds piece i when has(i) could give
// us part of the lease now: it holds a leased piece we neither have nor
// are verifying. It stops at the first such piece.
func (p *Picker) Serves(has func(int) bool) bool {
	if p.nIdle == 0 && len(p.list) == 0 {
		return false
	}
	for i, st := range p.state {
		if p.leased[i] && (st == pieceMissing || st == pieceActive) && has(i) {
			return true
		}
	}
	return false
}

// rarest returns the leased missing piece the peer has with the lowest
// availability, ties broken at random, or -1. The scan starts at a random
// piece and stops early at a piece no other connected peer announced
// (only have-all peers have it: nothing can be rarer), which makes the
// common all-seeders case O(1) instead of O(pieces).
func (p *Picker) rarest(has func(int) bool) int {
	n := len(p.state)
	if n == 0 {
		return -1
	}
	start := p.rng.IntN(n)
	best, bestAvail, ties := -1, int32(1<<30), 0
	for k := 0; k < n; k++ {
		i := start + k
		if i >= n {
			i -= n
		}
		if !p.leased[i] || p.state[i] != pieceMissing || !has(i) {
			continue
		}
		a := p.avail.count[i] // have-all peers have every piece alike
		switch {
		case a < bestAvail:
			best, bestAvail, ties = i, a, 1
			if a == 0 {
				return best
			}
		case a == bestAvail:
			ties++
			if p.rng.IntN(ties) == 0 {
				best = i
			}
		}
	}
	return best
}

func (p *Picker) activate(i int) *activePiece {
	var ap *activePiece
	if n := len(p.free); n > 0 {
		ap = p.free[n-1]
		p.free = p.free[:n-1]
	} else {
		ap = new(activePiece)
	}
	nb := p.g.numBlocks(i)
	if cap(ap.blocks) < nb {
		ap.blocks = make([]blockState, nb)
	}
	ap.blocks = ap.blocks[:nb]
	for b := range ap.blocks {
		ap.blocks[b] = blockState{from: noPeer}
	}
	ap.index, ap.received, ap.unrequested, ap.owner = i, 0, nb, noPeer
	p.active[i] = ap
	p.list = append(p.list, ap)
	p.state[i] = pieceActive
	p.nIdle--
	return ap
}

// Unrequest forgets k's request for a block (rejected, timed out, choked,
// peer gone) so that it can be requested again.
func (p *Picker) Unrequest(k peerKey, blk Block) {
	ap := p.activeFor(blk.Piece)
	if ap == nil {
		return
	}
	b, ok := p.g.validBlock(blk.Piece, blk.Begin, blk.Length)
	if !ok {
		return
	}
	if ap.owner == k {
		// A distrusted owner that times out, rejects or chokes must not
		// hold the piece up: others may finish it (Received refuses k's
		// late blocks, so a failure still is not shared).
		ap.owner = noPeer
	}
	ap.unrequestBlock(b, k)
}

func (ap *activePiece) unrequestBlock(b int, k peerKey) {
	bs := &ap.blocks[b]
	for j := 0; j < int(bs.nreq); j++ {
		if bs.reqBy[j] == k {
			bs.nreq--
			bs.reqBy[j] = bs.reqBy[bs.nreq]
			if bs.nreq == 0 && !bs.received {
				ap.unrequested++
			}
			return
		}
	}
}

func (p *Picker) activeFor(i int) *activePiece {
	if i < 0 || i >= len(p.active) {
		return nil
	}
	return p.active[i]
}

// Received is the outcome of a delivered block.
type received struct {
	Fresh    bool      // the block was wanted and is now held
	Complete bool      // the piece now has every block: verify it
	Cancel   []peerKey // other peers that had requested it (end game)
}

// Received records that k delivered a block. cancel is reused for the
// peers whose duplicate requests should be cancelled. Blocks that are not
// wanted (unrequested, already held, piece done) come back not Fresh.
func (p *Picker) Received(k peerKey, blk Block, cancel []peerKey) received {
	r := received{Cancel: cancel[:0]}
	ap := p.activeFor(blk.Piece)
	if ap == nil || p.state[blk.Piece] != pieceActive {
		return r
	}
	b, ok := p.g.validBlock(blk.Piece, blk.Begin, blk.Length)
	if !ok {
		return r
	}
	bs := &ap.blocks[b]
	if bs.received {
		return r
	}
	if !p.mayDeliver(ap, k) {
		// Keep a reserved piece the work of its owner alone.
		ap.unrequestBlock(b, k)
		return r
	}
	for j := 0; j < int(bs.nreq); j++ {
		if bs.reqBy[j] != k {
			r.Cancel = append(r.Cancel, bs.reqBy[j])
		}
	}
	if bs.nreq == 0 {
		ap.unrequested--
	}
	bs.nreq = 0
	bs.received = true
	bs.from = k
	ap.received++
	r.Fresh = true
	if ap.received == len(ap.blocks) {
		r.Complete = true
		p.state[blk.Piece] = pieceVerifying
		for x, y := range p.list {
			if y == ap {
				p.list = append(p.list[:x], p.list[x+1:]...)
				break
			}
		}
	}
	return r
}

// BlockSources appends, for each block of a piece being verified, the peer
// that delivered it (noPeer if unknown).
func (p *Picker) BlockSources(i int, dst []peerKey) []peerKey {
	ap := p.activeFor(i)
	if ap == nil {
		return dst
	}
	for b := range ap.blocks {
		dst = append(dst, ap.blocks[b].from)
	}
	return dst
}

// Verified settles a piece whose blocks were all received. On success it
// is done; on failure it goes back to missing and the distinct peers that
// delivered its blocks are returned (appended to dst).
func (p *Picker) Verified(i int, ok bool, dst []peerKey) []peerKey {
	ap := p.activeFor(i)
	if ap == nil || p.state[i] != pieceVerifying {
		return dst
	}
	if !ok {
		for b := range ap.blocks {
			f := ap.blocks[b].from
			dup := false
			for _, x := range dst {
				if x == f {
					dup = true
					break
				}
			}
			if !dup && f != noPeer {
				dst = append(dst, f)
			}
		}
	}
	p.active[i] = nil
	p.free = append(p.free, ap)
	if ok {
		p.state[i] = pieceDone
		p.leased[i] = false
		p.done++
		return dst
	}
	p.state[i] = pieceMissing
	if p.leased[i] {
		p.nIdle++
	}
	return dst
}

// PeerLeft drops every request of k still recorded in active pieces and
// releases the pieces reserved to it.
func (p *Picker) PeerLeft(k peerKey) {
	delete(p.distrusted, k)
	for _, ap := range p.list {
		if ap.owner == k {
			ap.owner = noPeer
		}
		for b := range ap.blocks {
			bs := &ap.blocks[b]
			for j := 0; j < int(bs.nreq); j++ {
				if bs.reqBy[j] == k {
					bs.nreq--
					bs.reqBy[j] = bs.reqBy[bs.nreq]
					if bs.nreq == 0 && !bs.received {
						ap.unrequested++
					}
					break
				}
			}
		}
	}
}

// DropBlocksFrom forgets every received, unverified block k delivered
// (k was banned): those blocks are requested again.
func (p *Picker) DropBlocksFrom(k peerKey) {
	for _, ap := range p.list {
		for b := range ap.blocks {
			bs := &ap.blocks[b]
			if bs.received && bs.from == k {
				bs.received = false
				bs.from = noPeer
				ap.received--
				if bs.nreq == 0 {
					ap.unrequested++
				}
			}
		}
	}
}

// Counts returns pieces missing (not done, not active), active (being
// downloaded or verified) and done.
func (p *Picker) Counts() (missing, active, done int) {
	for _, s := range p.state {
		switch s {
		case pieceMissing:
			missing++
		case pieceDone:
			done++
		default:
			active++
		}
	}
	return
}
