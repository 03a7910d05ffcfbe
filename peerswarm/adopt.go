package peerswarm

import (
	"time"

	"flotilla/peerwire"
	"flotilla/peerwire/mse"
)

// maxAdoptHaves: a handed-over connection was told we have nothing, so
// what we have goes to it as haves; with more pieces than this it is
// closed instead (a fresh connection gets one bitfield).
const maxAdoptHaves = 1024

// Adopt takes connections another owner set up for this torrent (a
// magnet's metadata fetch: metadata.FetchKeep) as if this swarm had made
// them: each is admitted like a new connection (the ban list, the caps,
// duplicates), greeted with our extension handshake, and read from where
// the old owner left off. One for another torrent, from ourselves, or
// plaintext while encryption is required is closed. The swarm owns them
// all from the call on.
func (s *Swarm) Adopt(hs []peerwire.Handover) {
	hs = append([]peerwire.Handover(nil), hs...)
	select {
	case <-s.loop.Closing():
		for _, h := range hs {
			h.Conn.Close()
		}
		return
	default:
	}
	s.loop.Post(func() {
		for _, h := range hs {
			nc := newConn{c: h.Conn, addr: h.Addr, hs: h.Theirs, outgoing: h.Outgoing, reached: true, greeted: h.Greeted}
			switch {
			case h.Theirs.InfoHash != s.cfg.InfoHash:
				nc.err = ErrWrongInfoHash
			case h.Theirs.PeerID == s.cfg.PeerID:
				nc.err = ErrOwnPeerID
			case !h.Encrypted && s.cfg.Encryption == mse.Require:
				nc.err = errPlainRefused
			case h.Greeted && s.up.nAdvertised > maxAdoptHaves:
				nc.err = errTooManyPeers
			}
			if nc.err != nil {
				h.Conn.Close()
			}
			s.register(nc)
		}
		now := time.Now()
		s.dialer.dialMore(now, s.up.seeding(), s.peers)
	})
}
