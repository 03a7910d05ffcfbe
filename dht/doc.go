// Package dht is a BitTorrent DHT node (BEP 5, IPv6-ready per BEP 32):
// KRPC over bencode, a k-bucket routing table, answers to ping, find_node,
// get_peers and announce_peer with rotating tokens, an iterative get_peers
// lookup that finds peers for an info-hash and announces us, a bounded
// store of the peers announced to us, and the routing table saved across
// restarts.
//
// # Shape (DESIGN points 2, 3 and 5)
//
// One goroutine, the Node's loop, owns the routing table, the peer store,
// the token secret and the pending queries. Every KRPC query we send is an
// intent in the watchdog (QueryKind, Issue with Config.QueryTimeout; the
// answer Fulfils it): a query's timeout comes only from the watchdog — on
// its alert (QueryAlert) and on every Config.Tick the loop asks
// watchdog.Overdue which of its queries are late, as swarm/leaseclock.go
// does for leases, so there is one clock and a dropped alert only delays a
// timeout. A reader goroutine decodes datagrams (internal/bencode, the
// project's strict reader), drops malformed ones and queries over the
// per-IP rate limit, and hands the rest to the loop through a bounded
// inbox. Lookups, the table, tokens, the peer store and the rate limiter
// are passive values (lookup.go, table.go, tokens.go, peerstore.go,
// ratelimit.go) tested without sockets.
//
// # Why a socket of its own
//
// The tracker package's UDP coordinator (tracker/udpcoord.go) routes only
// replies: a datagram is delivered when its BEP 15 header carries a
// transaction id some pipeline registered, from the address it was sent
// to; everything else is dropped. A DHT node mostly receives queries from
// addresses it never wrote to, must answer from a stable, advertised port
// (its routing-table identity), and uses 2-byte KRPC transaction ids
// inside bencode, so sharing that socket would mean teaching the tracker's
// reader to hand unknown datagrams to another owner and binding the
// tracker socket to the DHT port. The Node owns one socket in the same
// style instead: one reader goroutine, the owner writes, bounded queues.
//
// # Bounds
//
// Everything a remote can fill is bounded: the inbox (Config.Inbox, then
// datagrams are dropped), queries per source IP (Config.QueryRate and
// QueryBurst, for at most Config.MaxRateIPs addresses), pending queries
// (Config.MaxPending: a query beyond it fails at once), queries per lookup
// (Config.MaxLookupQueries) and candidates per lookup (8×K), the peer
// store (Config.PeersPerHash, Config.MaxPeers, Config.PeerTTL) and the
// routing table (K per bucket, 8 replacements). Bad input is dropped and
// counted (Stats), never a panic; the decoder is fuzzed (FuzzDecodeMsg).
//
// # Tests never reach the public DHT
//
// With an empty Config.Bootstrap a Node joins through DefaultBootstrap,
// the public routers; inside a test binary (testing.Testing), and in any
// program whose environment has EnvNoPublic (internal/testenv sets it in
// every test binary, so the coord processes tests start inherit it), New
// refuses them, and any bootstrap entry that is not a literal IP:PORT,
// with ErrPublicInTest.
package dht
