package coordinator

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"flotilla/peerwire"
	"flotilla/peerwire/mse"
)

// encrypted returns c with the Coordinator's encryption policy, which
// decides how the router identifies connections (identifierFor).
func (c IncomingConfig) encrypted(p mse.Policy) IncomingConfig {
	c.encryption = p
	return c
}

var errPlainRefused = errors.New("plaintext BitTorrent handshake refused (--encryption require)")

// identifierFor is the router's identifier under policy p. With MSE off
// it is identifyPlain (an MSE handshake is closed as not BitTorrent).
// Otherwise a connection starting with the BEP 3 protocol string is
// plaintext (refused under require); any other is an MSE initiator, whose
// torrent is found by its HASH('req2', SKEY) among the torrents routed;
// it is handed on decrypted, its initial payload (the BitTorrent
// handshake, usually) replayed first.
func (r *router) identifierFor(p mse.Policy) identifier {
	if p == mse.Off {
		return identifyPlain
	}
	return func(c net.Conn, deadline time.Time) ([20]byte, net.Conn, error) {
		var ih [20]byte
		head := make([]byte, 1+len(peerwire.Pstr))
		c.SetReadDeadline(deadline)
		if _, err := io.ReadFull(c, head); err != nil {
			return ih, nil, err
		}
		replay := &routedConn{Conn: c, head: head}
		if head[0] == byte(len(peerwire.Pstr)) && string(head[1:]) == peerwire.Pstr {
			if !p.AcceptPlain() {
				return ih, nil, errPlainRefused
			}
			return identifyPlain(replay, deadline)
		}
		mc, err := mse.Accept(replay, r.skeyOf, p.AcceptMethods(), deadline)
		if err != nil {
			return ih, nil, fmt.Errorf("encrypted handshake: %w", err)
		}
		return mc.InfoHash(), mc, nil
	}
}

// skeyOf finds the routed torrent whose HASH('req2', info-hash) is req2,
// in the table kept beside the routes (one lookup, not a hash of every
// torrent served per connection). It runs on the identifying goroutine
// and asks run.
func (r *router) skeyOf(req2 [20]byte) (ih [20]byte, ok bool) {
	r.do(func() { ih, ok = r.byReq2[req2] })
	return ih, ok
}
