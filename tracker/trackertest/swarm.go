// Package trackertest provides in-process fake BitTorrent trackers (HTTP
// and UDP) for tests: they keep a real swarm (announcers see each other,
// scrape counts follow events) and can be scripted to misbehave — drop
// packets, answer with a wrong transaction id, garbage, an error, oversized
// replies, expire connection ids, or never answer. They listen on loopback
// only and use the same wire codecs as the client.
package trackertest

import (
	"net/netip"
	"sync"

	"flotilla/tracker/internal/wire"
)

// swarm is the tracker's view of who announced what.
type swarm struct {
	mu       sync.Mutex
	torrents map[[20]byte]map[[20]byte]member // info-hash -> peer id -> member
}

type member struct {
	addr netip.AddrPort
	seed bool
}

func newSwarm() *swarm { return &swarm{torrents: map[[20]byte]map[[20]byte]member{}} }

// announce records r from addr and returns the other members (up to want;
// want < 0 means 50), plus the counts.
func (s *swarm) announce(r *wire.AnnounceRequest, addr netip.AddrPort) (peers []wire.Peer, seeders, leechers int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.torrents[r.InfoHash]
	if t == nil {
		t = map[[20]byte]member{}
		s.torrents[r.InfoHash] = t
	}
	if r.Event == wire.EventStopped {
		delete(t, r.PeerID)
	} else {
		t[r.PeerID] = member{addr: netip.AddrPortFrom(addr.Addr().Unmap(), r.Port), seed: r.Left == 0}
	}
	want := int(r.NumWant)
	if want < 0 {
		want = 50
	}
	for id, m := range t {
		if m.seed {
			seeders++
		} else {
			leechers++
		}
		if id != r.PeerID && len(peers) < want {
			peers = append(peers, wire.Peer{Addr: m.addr, ID: string(id[:])})
		}
	}
	return peers, seeders, leechers
}

func (s *swarm) scrape(h [20]byte) wire.ScrapeStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st wire.ScrapeStats
	for _, m := range s.torrents[h] {
		if m.seed {
			st.Seeders++
		} else {
			st.Leechers++
		}
	}
	return st
}
