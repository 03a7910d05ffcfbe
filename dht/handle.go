package dht

import (
	"net/netip"
	"strconv"
	"time"
)

// maxValues bounds the peers in one get_peers answer (a datagram stays
// under ~1 KB even for IPv6).
const maxValues = 50

// handle runs on the loop for each datagram the reader queued.
func (n *Node) handle(in inbound) {
	switch in.m.Y {
	case 'q':
		n.answer(in.m, in.from)
	case 'r', 'e':
		p, ok := n.pending[string(in.m.T)]
		if !ok || p.addr != in.from {
			n.ostats.unknownTx++ // late, duplicate or forged: ignored
			return
		}
		delete(n.pending, string(in.m.T))
		n.wd.Fulfil(p.ticket)
		if in.m.Y == 'e' {
			n.ostats.method(p.method).Errors++
			p.done(nil, &KRPCError{Code: in.m.ErrCode, Msg: in.m.ErrMsg})
			return
		}
		if q := n.table.heard(nodeInfo{ID: in.m.ID, Addr: in.from}, true, time.Now()); q != nil {
			n.ping(q.Addr)
		}
		n.ostats.method(p.method).Answered++
		p.done(&in.m, nil)
	}
}

// KRPCError is an error answer from a remote node.
type KRPCError struct {
	Code int
	Msg  string
}

func (e *KRPCError) Error() string { return "dht: remote error " + strconv.Itoa(e.Code) + ": " + e.Msg }

// answer answers a query. A querier that is not in our table and whose
// bucket has room is pinged, so it enters the table once it answers.
func (n *Node) answer(m msg, from netip.AddrPort) {
	now := time.Now()
	if m.ID == n.self {
		return // our own query looped back, or a node that took our id
	}
	n.table.heard(nodeInfo{ID: m.ID, Addr: from}, false, now)
	if _, known := n.table.byAddr[from]; !known && len(n.table.bucketOf(m.ID).nodes) < n.cfg.K &&
		len(n.pending) < n.cfg.MaxPending/2 {
		n.ping(from)
	}
	r := newDict()
	switch m.Q {
	case "ping":
		r.id("id", n.self)
	case "find_node":
		r.id("id", n.self)
		n.appendNodes(r, m, from, m.Target)
	case "get_peers":
		r.id("id", n.self)
		n.appendNodes(r, m, from, m.InfoHash)
		r.str("token", n.tokens.issue(from.Addr()))
		if vs := n.store.get(m.InfoHash, maxValues, now); len(vs) > 0 {
			r.raw("values", valuesList(vs))
		}
	case "announce_peer":
		if !n.tokens.valid(m.Token, from.Addr()) {
			n.ostats.badToken++
			n.send(from, appendError(nil, m.T, errProtocol, "bad token"))
			return
		}
		port := m.Port
		if m.ImpliedPort {
			port = int(from.Port())
		}
		if port == 0 {
			n.send(from, appendError(nil, m.T, errProtocol, "no port"))
			return
		}
		if !n.store.add(m.InfoHash, netip.AddrPortFrom(from.Addr(), uint16(port)), now) {
			n.send(from, appendError(nil, m.T, errServer, "peer store full"))
			return
		}
		n.ostats.announced++
		r.id("id", n.self)
	default:
		n.send(from, appendError(nil, m.T, errMethod, "method unknown"))
		return
	}
	n.send(from, appendResponse(nil, m.T, r.done()))
}

// appendNodes adds "nodes" and/or "nodes6" (BEP 32: as "want" asks, else
// the querier's family) with our contacts closest to target. Keys go in
// sorted order after "id".
func (n *Node) appendNodes(r *dict, m msg, from netip.AddrPort, target ID) {
	want4, want6 := m.Want4, m.Want6
	if !want4 && !want6 {
		want4, want6 = from.Addr().Is4(), from.Addr().Is6()
	}
	all := n.table.closest(target, 4*n.cfg.K)
	if want4 {
		r.str("nodes", compactNodes(firstOfFamily(all, true, n.cfg.K), 4))
	}
	if want6 {
		r.str("nodes6", compactNodes(firstOfFamily(all, false, n.cfg.K), 16))
	}
}

func firstOfFamily(ns []nodeInfo, v4 bool, k int) []nodeInfo {
	var out []nodeInfo
	for _, x := range ns {
		if x.Addr.Addr().Unmap().Is4() == v4 && len(out) < k {
			out = append(out, x)
		}
	}
	return out
}
