package dht

import (
	"net/netip"
	"slices"
	"time"
)

// Routing table (BEP 5). Bucket i holds nodes whose id shares exactly i
// leading bits with ours, at most k of them: the table BEP 5's splitting
// of the bucket holding our own id converges to, kept as a fixed array.
// A node is good while it answered us within goodFor (or sent us a query
// after having answered once), questionable after that, and bad after
// badAfter consecutive failed queries. A full bucket takes a new node only
// in place of a bad one; otherwise the newcomer waits in the bucket's
// replacement cache (bounded) and the table asks its owner to ping the
// most stale questionable node, whose failures make room.
//
// It is a passive value: no goroutines, no I/O, owned by the Node's loop.

const (
	goodFor        = 15 * time.Minute
	badAfter       = 2
	maxReplacement = 8
)

type contact struct {
	nodeInfo
	lastReply time.Time // last response from it (zero: never answered)
	lastQuery time.Time // last query from it
	failures  int       // consecutive queries it did not answer
	pinged    time.Time // last ping sent by questionable (not again within repingAfter)
}

// repingAfter spaces the pings of one questionable node.
const repingAfter = time.Minute

func (c *contact) good(now time.Time) bool {
	return c.failures == 0 && !c.lastReply.IsZero() &&
		(now.Sub(c.lastReply) < goodFor || now.Sub(c.lastQuery) < goodFor)
}

func (c *contact) bad() bool { return c.failures >= badAfter }

type bucket struct {
	nodes   []*contact
	repl    []nodeInfo // replacement cache, newest last
	changed time.Time  // last time a node was added or answered
}

type table struct {
	self    ID
	k       int
	buckets [161]bucket
	byAddr  map[netip.AddrPort]*contact
}

// newTable makes an empty table; its buckets count as refreshed at now, so
// the first refreshes come one interval after the join lookup.
func newTable(self ID, k int, now time.Time) *table {
	t := &table{self: self, k: k, byAddr: make(map[netip.AddrPort]*contact)}
	for i := range t.buckets {
		t.buckets[i].changed = now
	}
	return t
}

func (t *table) bucketOf(id ID) *bucket { return &t.buckets[commonPrefix(t.self, id)] }

// len is the number of nodes in the table.
func (t *table) len() int { return len(t.byAddr) }

// heard records that n answered us (replied true) or queried us. It
// returns a questionable node to ping when n could not be added because
// its bucket is full (n then waits in the replacement cache).
func (t *table) heard(n nodeInfo, replied bool, now time.Time) (ping *nodeInfo) {
	if n.ID == t.self || !n.Addr.IsValid() || n.Addr.Port() == 0 {
		return nil
	}
	if c, ok := t.byAddr[n.Addr]; ok {
		if c.ID != n.ID { // the address took another id: start afresh
			t.remove(c)
		} else {
			if replied {
				c.lastReply, c.failures = now, 0
				t.bucketOf(c.ID).changed = now
			} else {
				c.lastQuery = now
			}
			return nil
		}
	}
	if !replied {
		return nil // only nodes that answered us enter the table
	}
	b := t.bucketOf(n.ID)
	c := &contact{nodeInfo: n, lastReply: now}
	if len(b.nodes) < t.k {
		t.add(b, c, now)
		return nil
	}
	for i, o := range b.nodes {
		if o.bad() {
			delete(t.byAddr, o.Addr)
			b.nodes[i] = c
			t.byAddr[n.Addr] = c
			b.changed = now
			return nil
		}
	}
	b.repl = appendReplacement(b.repl, n)
	var stale *contact
	for _, o := range b.nodes {
		if !o.good(now) && (stale == nil || o.lastReply.Before(stale.lastReply)) {
			stale = o
		}
	}
	if stale == nil {
		return nil
	}
	p := stale.nodeInfo
	return &p
}

func appendReplacement(r []nodeInfo, n nodeInfo) []nodeInfo {
	r = slices.DeleteFunc(r, func(o nodeInfo) bool { return o.Addr == n.Addr })
	if len(r) >= maxReplacement {
		r = r[1:]
	}
	return append(r, n)
}

func (t *table) add(b *bucket, c *contact, now time.Time) {
	b.nodes = append(b.nodes, c)
	t.byAddr[c.Addr] = c
	b.changed = now
}

func (t *table) remove(c *contact) {
	b := t.bucketOf(c.ID)
	b.nodes = slices.DeleteFunc(b.nodes, func(o *contact) bool { return o == c })
	delete(t.byAddr, c.Addr)
}

// failed records that the node at addr did not answer a query. A node
// that turns bad is replaced by the newest node of the replacement cache.
func (t *table) failed(addr netip.AddrPort, now time.Time) {
	c, ok := t.byAddr[addr]
	if !ok {
		return
	}
	c.failures++
	if !c.bad() {
		return
	}
	b := t.bucketOf(c.ID)
	if len(b.repl) == 0 {
		return // kept, bad, until a newcomer takes its place
	}
	r := b.repl[len(b.repl)-1]
	b.repl = b.repl[:len(b.repl)-1]
	t.remove(c)
	if _, dup := t.byAddr[r.Addr]; !dup {
		// a cached node is questionable until it answers
		t.add(b, &contact{nodeInfo: r}, now)
	}
}

// closest returns up to n contacts closest to target, good ones and
// questionable ones alike but no bad ones.
func (t *table) closest(target ID, n int) []nodeInfo {
	out := make([]nodeInfo, 0, t.len())
	for _, c := range t.byAddr {
		if !c.bad() {
			out = append(out, c.nodeInfo)
		}
	}
	sortByDistance(target, out)
	return out[:min(n, len(out))]
}

func sortByDistance(target ID, ns []nodeInfo) {
	slices.SortFunc(ns, func(a, b nodeInfo) int {
		da, db := xor(target, a.ID), xor(target, b.ID)
		return compareIDs(da, db)
	})
}

func compareIDs(a, b ID) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// staleBuckets returns a random target in each bucket, up to the deepest
// non-empty one and one past it, that has not changed for interval: the
// owner refreshes each with a find_node lookup.
func (t *table) staleBuckets(now time.Time, interval time.Duration) []ID {
	deepest := -1
	for i := range t.buckets {
		if len(t.buckets[i].nodes) > 0 {
			deepest = i
		}
	}
	var out []ID
	for i := 0; i <= min(deepest+1, 159); i++ {
		b := &t.buckets[i]
		if now.Sub(b.changed) >= interval {
			b.changed = now // asked once per interval
			out = append(out, randomInBucket(t.self, i))
		}
	}
	return out
}

// all returns every contact that is not bad, for persistence.
func (t *table) all() []nodeInfo {
	return t.closest(t.self, t.len())
}

// questionable returns up to n nodes to ping now: not good, not bad, and
// not pinged within repingAfter.
func (t *table) questionable(now time.Time, n int) []nodeInfo {
	var out []nodeInfo
	for _, c := range t.byAddr {
		if len(out) == n {
			break
		}
		if !c.good(now) && !c.bad() && now.Sub(c.pinged) >= repingAfter {
			c.pinged = now
			out = append(out, c.nodeInfo)
		}
	}
	return out
}

// addUnverified puts a node read from the saved table into its bucket, if
// there is room, as questionable: it counts as good once it answers.
func (t *table) addUnverified(n nodeInfo) {
	if n.ID == t.self || !n.Addr.IsValid() || n.Addr.Port() == 0 {
		return
	}
	if _, ok := t.byAddr[n.Addr]; ok {
		return
	}
	if b := t.bucketOf(n.ID); len(b.nodes) < t.k {
		t.add(b, &contact{nodeInfo: n}, time.Time{})
	}
}
