package tracker

import "flotilla/tracker/internal/wire"

// Peer is one peer address reported by a tracker.
type Peer = wire.Peer
