package dht

import (
	"context"
	"net/netip"
	"time"
)

// LookupOptions shape a GetPeers lookup.
type LookupOptions struct {
	// Announce: after the lookup, announce_peer to the closest nodes that
	// gave a token.
	Announce bool
	// Port is the port announced; with ImpliedPort the receivers use the
	// port our datagrams come from instead (BEP 5 implied_port, for a peer
	// behind a NAT that maps the DHT and peer ports alike, or uTP).
	Port        int
	ImpliedPort bool
	// OnPeers, if set, gets each batch of new peers as the lookup finds
	// them. It runs on the node's loop and must not block.
	OnPeers func([]netip.AddrPort)
}

// LookupResult is what a lookup found and what it cost.
type LookupResult struct {
	Peers     []netip.AddrPort
	Queries   int // get_peers/find_node queries sent
	Responded int // of which answered
	Announced int // announce_peer queries accepted
	Took      time.Duration
}

// lookupRun drives one lookup on the loop.
type lookupRun struct {
	l       *lookup
	opt     LookupOptions
	start   time.Time
	res     LookupResult
	annLeft int
	over    bool
	finish  func(LookupResult) // nil for the node's own lookups
}

// GetPeers looks up peers for infoHash with an iterative get_peers lookup
// (closest first, Config.Alpha queries in flight, at most
// Config.MaxLookupQueries queries) and, if asked, announces us to the
// closest nodes. It returns when the lookup (and the announces) are over
// or ctx ends; a lookup abandoned by ctx runs to its bounded end.
func (n *Node) GetPeers(ctx context.Context, infoHash ID, opt LookupOptions) (LookupResult, error) {
	ch := make(chan LookupResult, 1)
	n.loop.Post(func() { n.startLookup(infoHash, true, opt, func(r LookupResult) { ch <- r }) })
	select {
	case r := <-ch:
		return r, nil
	case <-n.loop.Done():
		return LookupResult{}, ErrClosed
	case <-ctx.Done():
		return LookupResult{}, ctx.Err()
	}
}

// startLookup seeds a lookup with our closest contacts, and with the
// bootstrap nodes while the table is short of K.
func (n *Node) startLookup(target ID, getPeers bool, opt LookupOptions, finish func(LookupResult)) {
	run := &lookupRun{l: newLookup(n.self, target, getPeers, n.cfg.K, n.cfg.Alpha, n.cfg.MaxLookupQueries),
		opt: opt, start: time.Now(), finish: finish}
	n.ostats.lookups++
	run.l.add(n.table.closest(target, n.cfg.K), true)
	if n.table.len() < n.cfg.K {
		boot := make([]nodeInfo, 0, len(n.bootstrap))
		for _, a := range n.bootstrap {
			if a != n.addr {
				boot = append(boot, nodeInfo{Addr: a})
			}
		}
		run.l.add(boot, false)
	}
	n.step(run)
}

// step sends the queries the lookup wants now, or ends it.
func (n *Node) step(run *lookupRun) {
	if run.over {
		return
	}
	for _, c := range run.l.next() {
		addr := c.Addr
		d := newDict()
		d.id("id", n.self)
		method := "find_node"
		if run.l.getPeers {
			method = "get_peers"
			d.id("info_hash", run.l.target)
		} else {
			d.id("target", run.l.target)
		}
		run.res.Queries++
		n.query(addr, method, d.done(), func(m *msg, err error) {
			if err != nil {
				run.l.failed(addr)
			} else {
				run.res.Responded++
				if fresh := run.l.answered(addr, m); len(fresh) > 0 {
					run.res.Peers = append(run.res.Peers, fresh...)
					n.ostats.peersFound += int64(len(fresh))
					if run.opt.OnPeers != nil {
						run.opt.OnPeers(fresh)
					}
				}
			}
			n.step(run)
		})
	}
	if !run.over && run.l.done() {
		n.finishLookup(run)
	}
}

// finishLookup announces, if asked, then reports the result.
func (n *Node) finishLookup(run *lookupRun) {
	run.over = true
	if !run.opt.Announce || !run.l.getPeers {
		n.report(run)
		return
	}
	to := run.l.announceTo()
	run.annLeft = len(to)
	if run.annLeft == 0 {
		n.report(run)
		return
	}
	for _, c := range to {
		d := newDict()
		d.id("id", n.self)
		if run.opt.ImpliedPort {
			d.int("implied_port", 1)
		}
		d.id("info_hash", run.l.target)
		d.int("port", int64(run.opt.Port))
		d.str("token", c.token)
		n.query(c.Addr, "announce_peer", d.done(), func(_ *msg, err error) {
			if err == nil {
				run.res.Announced++
				n.ostats.announcesMade++
			}
			if run.annLeft--; run.annLeft == 0 {
				n.report(run)
			}
		})
	}
}

func (n *Node) report(run *lookupRun) {
	run.res.Took = time.Since(run.start)
	if run.finish != nil {
		run.finish(run.res)
	}
}
