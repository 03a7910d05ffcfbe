package dht

import (
	"math/rand/v2"
	"net/netip"
	"time"
)

// peerStore keeps the peers announced to us (announce_peer), bounded per
// info-hash (perHash: a full swarm replaces its oldest entry) and in total
// (total: a new entry is refused when the store is full), each expiring
// ttl after its last announce. A passive value owned by the Node's loop.
type peerStore struct {
	perHash, total int
	ttl            time.Duration
	swarms         map[ID]map[netip.AddrPort]time.Time // peer → expiry
	n              int
}

func newPeerStore(perHash, total int, ttl time.Duration) *peerStore {
	return &peerStore{perHash: perHash, total: total, ttl: ttl, swarms: make(map[ID]map[netip.AddrPort]time.Time)}
}

// add records an announce; false when the store is full.
func (s *peerStore) add(ih ID, p netip.AddrPort, now time.Time) bool {
	sw := s.swarms[ih]
	if _, ok := sw[p]; ok {
		sw[p] = now.Add(s.ttl)
		return true
	}
	if len(sw) >= s.perHash {
		var oldest netip.AddrPort
		var at time.Time
		for q, exp := range sw {
			if at.IsZero() || exp.Before(at) {
				oldest, at = q, exp
			}
		}
		delete(sw, oldest)
		s.n--
	}
	if s.n >= s.total {
		return false
	}
	if sw == nil {
		sw = make(map[netip.AddrPort]time.Time)
		s.swarms[ih] = sw
	}
	sw[p] = now.Add(s.ttl)
	s.n++
	return true
}

// get returns up to max live peers of ih, a random choice when it has more.
func (s *peerStore) get(ih ID, max int, now time.Time) []netip.AddrPort {
	var out []netip.AddrPort
	for p, exp := range s.swarms[ih] {
		if exp.After(now) {
			out = append(out, p)
		}
	}
	if len(out) > max {
		rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
		out = out[:max]
	}
	return out
}

// expire drops the entries past their ttl.
func (s *peerStore) expire(now time.Time) {
	for ih, sw := range s.swarms {
		for p, exp := range sw {
			if !exp.After(now) {
				delete(sw, p)
				s.n--
			}
		}
		if len(sw) == 0 {
			delete(s.swarms, ih)
		}
	}
}

func (s *peerStore) len() int { return s.n }
