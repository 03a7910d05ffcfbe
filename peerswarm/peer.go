package peerswarm

import (
	"errors"
	"io"
	"net/netip"
	"time"

	"flotilla/internal/bitfield"
	"flotilla/internal/rate"
	"flotilla/peerwire"
)

var (
	errBothSeeds     = errors.New("swarm: both sides complete")
	errDuplicatePeer = errors.New("swarm: duplicate connection")
	errTooManyPeers  = errors.New("swarm: connection cap reached")
	errFastMisuse    = errors.New("swarm: fast-extension message without the fast extension")

	// Abuse: each bans the peer's address.
	errRequestFlood = errors.New("swarm: peer sent more requests than it may have outstanding")
	errOutQueueFull = errors.New("swarm: peer stopped reading and its outbound queue is full")
	errUnrequested  = errors.New("swarm: peer sent blocks nobody requested")
)

// maxExtMessage caps extension messages (and unknown ones): we use only the
// extension handshake, which is far smaller.
const maxExtMessage = 64 << 10

// maxUnrequested is how many blocks a peer may send that we did not
// request (or stopped waiting for long ago) before it is banned.
const maxUnrequested = 8

// banworthy reports whether a peer dropped with err is banned too.
func banworthy(err error) bool {
	return errors.Is(err, peerwire.ErrProtocol) || errors.Is(err, errFastMisuse) ||
		errors.Is(err, errRequestFlood) || errors.Is(err, errOutQueueFull) || errors.Is(err, errUnrequested)
}

// peer is the owner goroutine's state of one connection.
type peer struct {
	h        *connHandle
	key      peerKey
	addr     netip.AddrPort
	id       [20]byte
	fast     bool
	ext      bool
	outgoing bool
	// encrypted: the connection runs RC4 (MSE); told in PEX as 0x01.
	encrypted bool

	bf      bitfield.Bitfield
	haveAll bool
	nhave   int
	gotBF   bool

	amChoking, amInterested     bool
	peerChoking, peerInterested bool
	allowedFast                 map[uint32]bool

	reqs       map[uint64]time.Time // outstanding requests we sent, by block key
	queue      []reqEntry           // the same, in send order (stale entries skipped)
	reqq       int                  // the peer's request queue limit (BEP 10), 0 unknown
	utMetadata uint8                // the peer's extended ID for ut_metadata, 0 none
	metaAsked  int                  // ut_metadata requests answered (metadata.go)
	listenPort uint16               // the port it listens on (BEP 10 "p"), 0 unknown

	// PEX (pex.go).
	utPex    uint8                   // the peer's extended ID for ut_pex, 0 none
	pexNext  time.Time               // when our next PEX message to it is due (zero: never)
	pexHeard time.Time               // when its last PEX message was taken
	pexTold  map[netip.AddrPort]bool // live peers it was told of

	// Abuse accounting.
	refused     int // requests received since we last choked it
	grace       int // blocks we stopped waiting for (cancelled, timed out): they may still come
	unrequested int // blocks received that were neither requested nor graced

	down, up  rate.Meter
	lastUp    int64
	lastBlock time.Time // last block received
	// lastPayload is when a block last went either way (zero: never).
	lastPayload time.Time
	waitSince   time.Time // first request sent since the last block received (zero: none)
	snubbed     bool
	nudged      time.Time // when nudgeIfChoked last told it we are interested
	wanted      int       // pieces it has that we lack
	hasFn       func(int) bool
}

type reqEntry struct {
	key  uint64
	sent time.Time
}

func blockKey(piece, begin int) uint64 { return uint64(piece)<<32 | uint64(uint32(begin)) }

func (p *peer) has(i int) bool {
	return p.haveAll || (p.bf.Has(i))
}

func (p *peer) isSeed(n int) bool { return p.haveAll || p.nhave == n }

// register takes a finished handshake (or a failed dial) from the accept
// and dial goroutines: the peer joins the table, is greeted, and gets its
// reader and writer goroutines.
func (s *Swarm) register(nc newConn) {
	s.dialer.finished(nc, time.Now())
	if nc.err != nil {
		s.log.Debug("connect failed", "peer", nc.addr, "err", nc.err)
		return
	}
	if err := s.admit(nc); err != nil {
		s.log.Debug("connection refused", "peer", nc.addr, "err", err)
		nc.c.Close()
		if errors.Is(err, errDuplicatePeer) && nc.outgoing {
			s.sameListener(nc)
		}
		return
	}
	s.dialer.connected(nc.addr)
	p := s.peers.add(nc)
	if s.guard.distrusted(nc.addr.Addr()) {
		s.req.picker.Distrust(p.key)
	}
	s.up.greet(s.peers, p, nc.greeted)
	if s.firstPeer.Load() == 0 {
		s.firstPeer.Store(time.Now().UnixNano())
	}
	s.log.Debug("peer connected", "peer", nc.addr, "outgoing", nc.outgoing, "fast", p.fast)
	s.wg.Add(2)
	go s.wire.readLoop(p.h)
	go s.wire.writeLoop(p.h)
}

// sameListener takes a dial that reached a peer already connected to us
// (it dialed us first, from another port): the address we dialed is
// where it listens, so it is not dialed again while that connection
// lasts (before, a tracker's address for a peer that had dialed us was
// redialed at every dial round, each a TCP and BitTorrent handshake the
// peer refused), and not at once after it either (dialer.duplicate).
func (s *Swarm) sameListener(nc newConn) {
	s.dialer.duplicate(nc.addr, time.Now())
	p := s.peers.duplicateOf(nc)
	if p == nil || p.outgoing || p.listenPort != 0 || p.addr.Addr() != nc.addr.Addr() {
		return
	}
	p.listenPort = nc.addr.Port()
}

// admit says why a new connection is refused (banned, a duplicate, over
// the caps), or nil; it may evict an idle incoming peer to make room.
func (s *Swarm) admit(nc newConn) error {
	if s.wire.isBanned(nc.addr.Addr()) {
		return ErrBanned
	}
	return s.peers.admit(nc, time.Now(), func(victim *peer) {
		s.log.Debug("evicting idle incoming peer", "peer", victim.addr)
		s.dropPeer(victim, errEvicted)
	})
}

func (s *Swarm) dropPeer(p *peer, err error) {
	if !s.peers.has(p) {
		return
	}
	if banworthy(err) {
		s.log.Info("peer broke the protocol", "peer", p.addr, "err", err)
		s.ban(p.addr.Addr()) // ban calls dropPeer again for this peer
		if !s.peers.has(p) {
			return
		}
	} else if err != nil && !errors.Is(err, io.EOF) {
		s.log.Debug("peer dropped", "peer", p.addr, "err", err)
	}
	s.peers.remove(p)
	// Blocks a banned peer sent that are not yet verified are not worth a
	// hash.
	banned := s.guard.bans.has(p.addr.Addr())
	if !banned {
		s.guard.left(p.key, p.addr.Addr())
	}
	s.req.peerLeft(p, banned)
	p.h.close()
	s.uploadedOld += p.h.uploaded.Load()
	now := time.Now()
	s.dialer.left(p.addr, now)
	if r, ok := p.reachable(); ok && r != p.addr {
		s.dialer.left(r, now)
	}
	s.req.fillAll(s.peers)
}

// dropOverfull drops and bans every peer whose outbound queue is full.
func (s *Swarm) dropOverfull() {
	s.peers.overfull = false
	for p := range s.peers.all() {
		if p.h.out.isFull() {
			s.dropPeer(p, errOutQueueFull)
		}
	}
}
