// Package metadata fetches a torrent's info dictionary from peers (BEP 9,
// ut_metadata over BEP 10) for a magnet link.
//
// Fetch connects to the magnet's x.pe peers, to those given in Config and
// to those its trackers return, asks every peer advertising ut_metadata for
// pieces of the info dictionary (several peers at once), checks the whole
// against the magnet's info-hash and returns a metainfo.Torrent whose
// announce-list is the magnet's trackers.
//
// One goroutine (Fetch's own) owns the assembly; each peer connection has
// a reader and a writer goroutine which only report to it. A peer whose
// messages break the protocol (a piece of the wrong length, a total_size
// other than the one it advertised, data not asked for) is dropped at once.
// A bad piece cannot be told from a good one until the whole is hashed, so
// when the assembly from several peers fails its hash, each peer is asked
// for a complete copy of its own and a peer whose copy fails is dropped.
//
// FetchKeep does the same and then hands the connections over instead of
// closing them (peerwire.Handover, for peerswarm.Swarm.Adopt): each
// reader is interrupted by a read deadline at once, the bytes its Reader
// buffered are kept (peerwire.Reader.Detach), and the peer's messages
// that came during the fetch (its bitfield, haves, extension handshake,
// at most 256 KiB) are replayed first on the handed-over connection. The
// download then starts without a second dial, handshake and choke round
// per peer: the seeders' slow handshake answer is paid once.
package metadata
