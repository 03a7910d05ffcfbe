package tracker

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"flotilla/tracker/internal/wire"
)

// The UDP side of a request (BEP 15): connect, connection id reuse and
// expiry, transaction ids, retransmission on the 15·2^n schedule, the error
// action. Each step states an intent to the shared coordinator and returns;
// the reply comes back through the pipeline's inbox and is handled here, on
// the pipeline's goroutine. The connection id (udpConn) outlives requests
// and belongs to the pipeline.

const (
	udpResolving uint8 = iota + 1
	udpConnecting
	udpSending
)

// udpConn is a pipeline's connection state with its tracker.
type udpConn struct {
	addr   netip.AddrPort // resolved at the last connect
	id     uint64
	at     time.Time // when the id was obtained; zero: no connection
	v6     bool
	expire bool // the tracker rejected the id: reconnect
}

type resolveResult struct {
	addr netip.AddrPort
	err  error
}

// valid reports whether the connection id can still be used at now.
func (c *udpConn) valid(now time.Time, ttl time.Duration) bool {
	return !c.at.IsZero() && !c.expire && now.Sub(c.at) < ttl
}

// startUDP sends r, connecting first unless the pipeline's connection id
// is still valid.
func (r *request) startUDP(now time.Time) {
	p := r.p
	if p.conn.valid(now, p.cfg().UDPConnIDTTL) {
		r.sendUDP(now)
		return
	}
	r.connect(now)
}

// connect resolves the host (once per connect) and then sends a connect request.
func (r *request) connect(now time.Time) {
	p := r.p
	if r.txid != 0 {
		p.a.c.udp.forget(r.txid)
		r.txid = 0
	}
	p.conn = udpConn{}
	if ip, err := netip.ParseAddr(p.host); err == nil {
		r.onResolvedAddr(now, p.addrPort(ip))
		return
	}
	r.phase = udpResolving
	r.retryAt = time.Time{}
	seq, host, res, timeout := p.seq, p.host, p.a.c.resolver, p.cfg().ResolveTimeout
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	r.cancel = cancel
	go func() {
		defer cancel()
		rr := &resolveResult{}
		addrs, err := res.LookupNetIP(ctx, "ip", host)
		switch {
		case err != nil:
			rr.err = fmt.Errorf("%w: %q: %w", ErrResolve, host, err)
		case len(addrs) == 0:
			rr.err = fmt.Errorf("%w: %q: no addresses", ErrResolve, host)
		default:
			a := addrs[0]
			for _, x := range addrs { // prefer IPv4: always reachable here
				if x.Unmap().Is4() {
					a = x
					break
				}
			}
			rr.addr = netip.AddrPortFrom(a.Unmap(), 0)
		}
		select {
		case p.inbox <- pmsg{kind: msgResolved, seq: seq, ptr: rr}:
		case <-p.a.hardStop:
		}
	}()
}

func (p *pipeline) addrPort(ip netip.Addr) netip.AddrPort {
	port, _ := netip.ParseAddrPort(net.JoinHostPort("0.0.0.0", p.port))
	return netip.AddrPortFrom(ip.Unmap(), port.Port())
}

// onResolved continues r with the result of its host lookup.
func (r *request) onResolved(rr *resolveResult) {
	now := time.Now()
	if rr.err != nil {
		r.p.finish(now, false, nil, nil, rr.err)
		return
	}
	r.onResolvedAddr(now, r.p.addrPort(rr.addr.Addr()))
}

func (r *request) onResolvedAddr(now time.Time, addr netip.AddrPort) {
	p := r.p
	if addr.Port() == 0 {
		p.finish(now, false, nil, nil, fmt.Errorf("%w: bad port %q", ErrUnsupportedURL, p.port))
		return
	}
	p.conn.addr, p.conn.v6 = addr, !addr.Addr().Is4()
	r.phase = udpConnecting
	r.attempt = 0
	r.connTicket = p.a.c.wd.Issue(KindConnect, p.owner, p.cfg().RequestDeadline)
	r.txid = p.a.c.udp.register(udpWaiter{from: addr, deliver: p.deliver})
	r.transmit(now)
}

func (r *request) sendUDP(now time.Time) {
	p := r.p
	r.phase = udpSending
	r.attempt = 0
	if r.txid != 0 {
		p.a.c.udp.forget(r.txid)
	}
	r.txid = p.a.c.udp.register(udpWaiter{from: p.conn.addr, deliver: p.deliver})
	r.transmit(now)
}

// transmit (re)sends the current packet under the current transaction id
// and sets the retransmission deadline UDPRetryBase·2^attempt.
func (r *request) transmit(now time.Time) {
	p := r.p
	buf := getBuf()
	switch {
	case r.phase == udpConnecting:
		*buf = wire.AppendConnectRequest(*buf, r.txid)
	case r.kind == UpdateScrape:
		*buf = wire.AppendScrapeRequest(*buf, p.conn.id, r.txid, [][20]byte{p.a.infoHash})
	default:
		ar := p.announceRequest(r.event)
		*buf = wire.AppendAnnounceRequest(*buf, p.conn.id, r.txid, &ar, p.urlData)
	}
	r.retryAt = now.Add(p.cfg().UDPRetryBase << r.attempt)
	if err := p.a.c.udp.want(r.txid, p.conn.addr, buf); err != nil {
		p.finish(now, false, nil, nil, err)
	}
}

// udpTimeout runs when the reply did not come by retryAt.
func (r *request) udpTimeout(now time.Time) {
	p := r.p
	r.attempt++
	maxRetries := p.cfg().UDPMaxRetries
	if p.hasAlternative && !p.stopping {
		maxRetries = min(maxRetries, p.cfg().FailoverRetries)
	}
	if r.attempt > maxRetries {
		p.finish(now, false, nil, nil, fmt.Errorf("%w: no reply after %d transmissions", ErrTimeout, r.attempt))
		return
	}
	note := fmt.Sprintf("retransmission %d", r.attempt)
	if r.phase == udpConnecting {
		p.a.c.wd.Annotate(r.connTicket, note)
	} else {
		p.a.c.wd.Annotate(r.ticket, note)
	}
	if r.phase == udpSending && !p.conn.valid(now, p.cfg().UDPConnIDTTL) {
		attempt := r.attempt
		r.connect(now) // the connection id expired while we waited: get a new one
		if p.req == r && r.phase == udpConnecting {
			r.attempt = attempt
			r.retryAt = now.Add(p.cfg().UDPRetryBase << attempt)
		}
		return
	}
	r.transmit(now)
}

// onUDP handles a datagram (or a send error) for r.
func (r *request) onUDP(rep udpReply) {
	defer putBuf(rep.buf)
	p := r.p
	if r.txid == 0 || r.phase == udpResolving {
		return // late reply to a finished request
	}
	now := time.Now()
	if rep.err != nil {
		p.finish(now, false, nil, nil, rep.err)
		return
	}
	b := *rep.buf
	action, txid, _ := wire.ReplyHeader(b)
	if txid != r.txid {
		return // a reply for an earlier transaction that was still queued
	}
	if rep.oversized {
		p.finish(now, true, nil, nil, fmt.Errorf("%w: datagram larger than %d bytes", ErrReplyTooLarge, p.cfg().UDPMaxReply))
		return
	}
	if action == wire.ActionError {
		err := wire.DecodeErrorReply(b)
		if r.phase == udpSending && !r.freshConn && !r.retried {
			// The tracker may have expired our connection id early: get a
			// fresh one and try once more before reporting the error.
			r.retried = true
			p.conn.expire = true
			r.connect(now)
			return
		}
		if r.phase == udpConnecting {
			p.a.c.wd.Fulfil(r.connTicket)
			r.connTicket.ID = 0
		}
		p.finish(now, true, nil, nil, err)
		return
	}
	switch r.phase {
	case udpConnecting:
		id, err := wire.DecodeConnectReply(b)
		p.a.c.wd.Fulfil(r.connTicket)
		r.connTicket.ID = 0
		if err != nil {
			p.finish(now, true, nil, nil, err)
			return
		}
		p.conn.id, p.conn.at, p.conn.expire = id, now, false
		r.freshConn = true
		r.sendUDP(now)
	case udpSending:
		if r.kind == UpdateScrape {
			st, err := wire.DecodeScrapeReply(b, 1)
			if err != nil {
				p.finish(now, true, nil, nil, err)
				return
			}
			p.finish(now, true, nil, &st[0], nil)
			return
		}
		resp, err := wire.DecodeAnnounceReply(b, p.conn.v6)
		p.finish(now, true, resp, nil, err)
	}
}

// datagramCoordinator is what a UDP pipeline needs from the coordinator
// (defined where used, DESIGN point 7). Its methods never block on the
// network: want only records the wish to send.
type datagramCoordinator interface {
	register(w udpWaiter) uint32
	want(txid uint32, to netip.AddrPort, pkt *[]byte) error
	forget(txid uint32)
}

var _ datagramCoordinator = (*udpCoordinator)(nil)
