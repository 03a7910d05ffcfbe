package peerswarm

import (
	"errors"

	"flotilla/peerwire"
	"net/netip"
	"slices"
	"time"
)

// candidate is a peer address the swarm may dial (AddPeers), with its
// dialing state and back-off after failed attempts.
type candidate struct {
	dialing bool
	fails   int
	next    time.Time
	self    bool
	added   time.Time // last heard of (AddPeers)
	// plainFirst: first heard of through PEX, without the "prefers
	// encryption" flag (BEP 11 0x01): under mse.Prefer it is dialed with
	// a plaintext handshake first (saving the MSE round trip and key
	// exchange), then with MSE if that fails. Others start with MSE.
	plainFirst bool
}

// maxCandidates bounds the addresses a swarm remembers to dial; beyond it
// the stalest addresses not being dialed or connected are forgotten (those
// that failed to connect first), down to three quarters of it.
const maxCandidates = 4096

// dialer is the candidate book: the addresses the swarm may dial, their
// back-off after failed attempts, and starting dials within the MaxDialing
// and MaxPeers caps. Owned by the swarm's run goroutine; a dial runs on
// the wire (dial), and its outcome comes back through the Swarm's register
// (finished, connected).
type dialer struct {
	maxDialing, maxPeers int
	cands                map[netip.AddrPort]*candidate
	bans                 *addrSet                                // the guard's ban list
	dial                 func(a netip.AddrPort, plainFirst bool) // starts a dial goroutine
}

func newDialer(maxDialing, maxPeers int, bans *addrSet, dial func(netip.AddrPort, bool)) *dialer {
	return &dialer{maxDialing: maxDialing, maxPeers: maxPeers, cands: map[netip.AddrPort]*candidate{}, bans: bans, dial: dial}
}

// AddPeers implements swarm.Worker: the addresses (unmapped; invalid ones
// and port 0 skipped) become candidates to dial, and dialing starts within
// the MaxDialing and MaxPeers caps. A seed keeps them but does not dial:
// leechers come to it. Beyond maxCandidates the stalest are forgotten.
func (s *Swarm) AddPeers(addrs []netip.AddrPort) {
	addrs = append([]netip.AddrPort(nil), addrs...)
	s.loop.Post(func() {
		now := time.Now()
		s.dialer.add(addrs, now, s.peers)
		s.dialer.dialMore(now, s.up.seeding(), s.peers)
	})
}

// add makes the addresses candidates, forgetting the stalest beyond
// maxCandidates.
func (d *dialer) add(addrs []netip.AddrPort, now time.Time, t *peerTable) {
	for _, a := range addrs {
		d.addOne(a, false, now)
	}
	d.trim(t)
}

// addPex makes peers learned through PEX candidates: plainFirst unless
// the peer prefers encryption. An address keeps what it was first heard
// of as: the sub-chief deals the peers PEX taught back to every worker,
// this one included (AddPeers).
func (d *dialer) addPex(ps []peerwire.PexPeer, now time.Time, t *peerTable) {
	for _, p := range ps {
		d.addOne(p.Addr, p.Flags&peerwire.PexPrefersEncryption == 0, now)
	}
	d.trim(t)
}

func (d *dialer) addOne(a netip.AddrPort, plainFirst bool, now time.Time) {
	a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
	if !a.IsValid() || a.Port() == 0 {
		return
	}
	c := d.cands[a]
	if c == nil {
		c = &candidate{plainFirst: plainFirst}
		d.cands[a] = c
	}
	c.added = now
}

func (d *dialer) trim(t *peerTable) {
	if len(d.cands) > maxCandidates {
		d.prune(maxCandidates*3/4, t)
	}
}

// prune forgets candidates until at most keep remain, sparing those being
// dialed or connected (in t): first the ones that failed most, then the
// least recently heard of.
func (d *dialer) prune(keep int, t *peerTable) {
	type cand struct {
		a netip.AddrPort
		c *candidate
	}
	var drop []cand
	for a, c := range d.cands {
		if !c.dialing && !t.connectedTo(a) {
			drop = append(drop, cand{a, c})
		}
	}
	slices.SortFunc(drop, func(x, y cand) int {
		if x.c.fails != y.c.fails {
			return y.c.fails - x.c.fails
		}
		return x.c.added.Compare(y.c.added)
	})
	for _, dr := range drop {
		if len(d.cands) <= keep {
			return
		}
		delete(d.cands, dr.a)
	}
}

// dialMore starts outgoing connections while under the caps (t holds the
// connected peers). A seed does not dial: leechers come to it.
func (d *dialer) dialMore(now time.Time, seeding bool, t *peerTable) {
	if seeding {
		return
	}
	dialing := 0
	for _, c := range d.cands {
		if c.dialing {
			dialing++
		}
	}
	for a, c := range d.cands {
		if dialing >= d.maxDialing || t.n+dialing >= d.maxPeers {
			return
		}
		if c.dialing || c.self || now.Before(c.next) || t.connectedTo(a) || d.bans.has(a.Addr()) {
			continue
		}
		c.dialing = true
		dialing++
		d.dial(a, c.plainFirst)
	}
}

// finished takes the end of a handshake with a candidate's address: a
// dial is over, and a failed one backs off (for good if it reached
// ourselves).
// reachedBackoff is the back-off step after a failed handshake with a
// peer whose TCP connect succeeded (30 s for a failed connect).
const reachedBackoff = 5 * time.Second

func (d *dialer) finished(nc newConn, now time.Time) {
	c := d.cands[nc.addr]
	if c == nil {
		return
	}
	if nc.outgoing {
		c.dialing = false
	}
	if nc.err != nil {
		c.fails++
		// A peer that took the connection is up: it failed the handshake
		// (busy, or it dropped us) and is worth trying again soon. One
		// that did not is likely gone.
		backoff := 30 * time.Second
		if nc.reached {
			backoff = reachedBackoff
		}
		c.next = now.Add(time.Duration(min(c.fails, 10)) * backoff)
		if errors.Is(nc.err, ErrOwnPeerID) {
			c.self = true
		}
	}
}

// connected clears the failures of a candidate that joined.
func (d *dialer) connected(a netip.AddrPort) {
	if c := d.cands[a]; c != nil {
		c.fails = 0
	}
}

// duplicate takes a dial refused because the peer was already connected
// (under another address): it is not dialed again for reachedBackoff
// even if that connection ends meanwhile.
func (d *dialer) duplicate(a netip.AddrPort, now time.Time) {
	if c := d.cands[a]; c != nil {
		c.next = now.Add(reachedBackoff)
	}
}

// left keeps a candidate that just left from being dialed again at once.
func (d *dialer) left(a netip.AddrPort, now time.Time) {
	if c := d.cands[a]; c != nil {
		c.next = now.Add(30 * time.Second)
	}
}
