package peerswarm

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"flotilla/metainfo"
	"flotilla/swarm"
)

// wire is the side of the local swarm that runs off the owner goroutine:
// the accept loop (acceptLoop), dials (dial), handshakes, each
// connection's reader and writer (readLoop, writeLoop) and the SHA-1 pool
// (hashLoop). It shares with the owner only channels (newConns, connIn,
// hashIn and hashOut), the ban list (a copy the owner replaces whole, read
// without a lock), the per-address slots of the accept loop, and per
// connection the connHandle fields documented as shared. hsMu guards the
// connections in their handshake, which Close interrupts.
type wire struct {
	cfg     swarm.Config
	info    *metainfo.Info
	storage swarm.Storage
	log     *slog.Logger
	ctx     context.Context // cancelled when the swarm shuts down (dials)
	closing <-chan struct{} // the owner's loop is closing
	wg      *sync.WaitGroup // the Swarm's: shutdown waits for every goroutine

	newConns chan newConn    // handshakes done (or dials failed), to the owner
	connIn   chan *connBatch // messages read, in batches, to the owner
	hashIn   chan hashJob    // complete pieces to verify
	hashOut  chan hashJob    // verified (or failed) pieces, to the owner
	slots    ipSlots         // incoming connections per address (accept loop)
	bans     *addrSet        // the guard's ban list

	hsMu    sync.Mutex
	hsConns map[net.Conn]struct{} // connections in their handshake; nil once closing
}

func (w *wire) isBanned(a netip.Addr) bool { return w.bans.has(a) }
