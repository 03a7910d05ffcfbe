package trackertest

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"flotilla/tracker/internal/wire"
)

// UDPBehavior scripts a UDP tracker. Counters (Drop, WrongTxID, Garbage)
// apply to the next N requests of any kind and count down.
type UDPBehavior struct {
	Drop        int           // ignore the next N requests
	NeverAnswer bool          // ignore every request
	WrongTxID   int           // answer the next N requests with a wrong transaction id only
	Garbage     int           // answer the next N announces with a short, malformed reply
	ErrorMsg    string        // answer announces with an error action carrying this message
	ConnIDTTL   time.Duration // answer announces with an error if their connection id is older
	Oversized   int           // pad announce replies to this many bytes (0: no padding)
	Interval    time.Duration // announce interval to hand out (default 30 min)
	ExtraPeers  []wire.Peer   // returned in addition to the swarm's members
	Stateless   bool          // keep no swarm: answer with ExtraPeers only (benchmarks)
}

// UDPStats counts the requests a UDP tracker received (answered or not).
type UDPStats struct {
	Connects, Announces, Scrapes, Errors int64
}

// UDPTracker is a fake BEP 15 tracker on a loopback UDP socket, served by
// one goroutine.
type UDPTracker struct {
	URL  string         // udp://host:port/announce
	Addr netip.AddrPort // its address

	conn   *net.UDPConn
	swarm  *swarm
	secret uint64

	mu       sync.Mutex
	behavior UDPBehavior
	last     wire.Request
	events   []wire.Event

	connects, announces, scrapes, errors atomic.Int64
	done                                 chan struct{}
}

// NewUDP starts a UDP tracker on ip ("127.0.0.1" or "::1") with a free port.
func NewUDP(ip string) (*UDPTracker, error) {
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), 0)))
	if err != nil {
		return nil, fmt.Errorf("fake udp tracker: %w", err)
	}
	_ = conn.SetReadBuffer(4 << 20) // best effort: bursts from benchmarks
	t := &UDPTracker{conn: conn, swarm: newSwarm(), secret: rand.Uint64(), done: make(chan struct{})}
	t.Addr = conn.LocalAddr().(*net.UDPAddr).AddrPort()
	t.URL = fmt.Sprintf("udp://%s/announce", t.Addr)
	go t.serve()
	return t, nil
}

// SetBehavior changes the script under the tracker's lock.
func (t *UDPTracker) SetBehavior(f func(*UDPBehavior)) {
	t.mu.Lock()
	f(&t.behavior)
	t.mu.Unlock()
}

// Stats returns the request counters.
func (t *UDPTracker) Stats() UDPStats {
	return UDPStats{Connects: t.connects.Load(), Announces: t.announces.Load(), Scrapes: t.scrapes.Load(), Errors: t.errors.Load()}
}

// LastRequest returns the last announce or scrape request received.
func (t *UDPTracker) LastRequest() wire.Request {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

// Events returns the announce events received, in order.
func (t *UDPTracker) Events() []wire.Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]wire.Event(nil), t.events...)
}

// Close stops the tracker.
func (t *UDPTracker) Close() {
	t.conn.Close()
	<-t.done
}

// connection ids encode their issue time so expiry needs no table.
func (t *UDPTracker) connID(now time.Time) uint64 {
	return uint64(now.UnixMilli())<<20 ^ t.secret&0xFFFFF
}

func (t *UDPTracker) connAge(id uint64, now time.Time) (time.Duration, bool) {
	if id&0xFFFFF != t.secret&0xFFFFF {
		return 0, false
	}
	ms := int64(id >> 20)
	return now.Sub(time.UnixMilli(ms)), true
}

func (t *UDPTracker) serve() {
	defer close(t.done)
	buf := make([]byte, 2048)
	var out []byte
	for {
		n, from, err := t.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		q, err := wire.ParseRequest(buf[:n])
		if err != nil {
			continue
		}
		out = t.answer(out[:0], q, from)
		if out != nil {
			t.conn.WriteToUDPAddrPort(out, from)
		}
	}
}

func (t *UDPTracker) answer(out []byte, q wire.Request, from netip.AddrPort) []byte {
	now := time.Now()
	switch q.Action {
	case wire.ActionConnect:
		t.connects.Add(1)
	case wire.ActionAnnounce:
		t.announces.Add(1)
	case wire.ActionScrape:
		t.scrapes.Add(1)
	}
	t.mu.Lock()
	b := &t.behavior
	if b.NeverAnswer || b.Drop > 0 {
		if b.Drop > 0 {
			b.Drop--
		}
		t.mu.Unlock()
		return nil
	}
	txid := q.TxID
	if b.WrongTxID > 0 {
		b.WrongTxID--
		txid ^= 0x5a5a5a5a
	}
	garbage := false
	if q.Action == wire.ActionAnnounce {
		t.last = q
		t.events = append(t.events, q.Announce.Event)
		if b.Garbage > 0 {
			b.Garbage--
			garbage = true
		}
	} else if q.Action == wire.ActionScrape {
		t.last = q
	}
	beh := *b
	t.mu.Unlock()

	if q.Action == wire.ActionConnect {
		return wire.AppendConnectReply(out, txid, t.connID(now))
	}
	age, ok := t.connAge(q.ConnID, now)
	if !ok || (beh.ConnIDTTL > 0 && age > beh.ConnIDTTL) {
		t.errors.Add(1)
		return wire.AppendErrorReply(out, txid, "connection id expired")
	}
	if q.Action == wire.ActionScrape {
		st := make([]wire.ScrapeStats, len(q.Hashes))
		for i, h := range q.Hashes {
			st[i] = t.swarm.scrape(h)
		}
		return wire.AppendScrapeReply(out, txid, st)
	}
	if beh.ErrorMsg != "" {
		t.errors.Add(1)
		return wire.AppendErrorReply(out, txid, beh.ErrorMsg)
	}
	if garbage {
		out = binary.BigEndian.AppendUint32(out, wire.ActionAnnounce)
		out = binary.BigEndian.AppendUint32(out, txid)
		return append(out, 0xde, 0xad) // shorter than the 20-byte minimum
	}
	var peers []wire.Peer
	var seeders, leechers int64
	if !beh.Stateless {
		peers, seeders, leechers = t.swarm.announce(&q.Announce, from)
	}
	peers = append(peers, beh.ExtraPeers...)
	interval := beh.Interval
	if interval == 0 {
		interval = 30 * time.Minute
	}
	resp := &wire.AnnounceResponse{Interval: interval, Seeders: seeders, Leechers: leechers, Peers: peers}
	out = wire.AppendAnnounceReply(out, txid, resp, !from.Addr().Unmap().Is4())
	for len(out) < beh.Oversized {
		out = append(out, 0)
	}
	return out
}
