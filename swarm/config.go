package swarm

import (
	"context"
	"crypto/sha1"
	"errors"
	"flotilla/peerwire/mse"
	"fmt"
	"log/slog"
	"net"
	"time"

	"flotilla/metainfo"
	"flotilla/watchdog"
)

// Storage is where verified pieces go and uploads come from.
// *piecestore.Store satisfies it. All methods are safe for concurrent use.
type Storage interface {
	// Have returns the bitfield (BEP 3 bit order) of pieces complete on disk.
	Have() []byte
	// Submit queues a verified piece for writing; the store takes
	// ownership of data. It blocks while the write budget is exhausted.
	Submit(ctx context.Context, piece int, data []byte) error
	// Written delivers pieces once durably written and recorded.
	Written() <-chan int
	// ReadBlock reads part of a complete piece (for uploads).
	ReadBlock(piece int, begin int64, buf []byte) (int, error)
	// Err is the store's sticky fatal error, if any.
	Err() error
}

// Config configures a Download. Zero fields are not defaults: start from
// DefaultConfig.
type Config struct {
	// InfoHash and Info describe the torrent.
	InfoHash [20]byte
	Info     *metainfo.Info
	// InfoBytes, if set, is the exact info dictionary (its SHA-1 is
	// InfoHash): the local swarm serves it to peers fetching metadata for
	// a magnet link (BEP 9). Nil: it is not offered.
	InfoBytes []byte
	// PeerID is our peer id in handshakes.
	PeerID [20]byte
	// Storage receives verified pieces and serves uploads.
	Storage Storage
	// Listener, if set, accepts incoming peer connections (the Download
	// closes it). Otherwise ListenAddr, if non-empty, is listened on.
	Listener   net.Listener
	ListenAddr string
	// MaxPeers caps connected peers (incoming and outgoing).
	MaxPeers int
	// MaxDialing caps outgoing connection attempts in flight.
	MaxDialing int
	// DialTimeout bounds connect plus handshake of outgoing connections.
	DialTimeout time.Duration
	// HandshakeTimeout bounds the handshake of incoming connections.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection that sent nothing for this long.
	IdleTimeout time.Duration
	// KeepAlive is the interval of keep-alive messages on quiet connections.
	KeepAlive time.Duration
	// Seed keeps serving uploads after the download is complete.
	Seed bool
	// UploadSlots is the number of peers unchoked at once.
	UploadSlots int
	// Encryption is which connections the local swarm makes and accepts
	// (MSE/PE); the zero value is mse.Off, plaintext only.
	Encryption mse.Policy
	// ChokeInterval is how often upload slots are reassigned.
	ChokeInterval time.Duration
	// OptimisticInterval is how long an optimistic unchoke lasts.
	OptimisticInterval time.Duration
	// SnubTimeout marks a peer snubbed when it unchoked us, has requests
	// outstanding and sent no block for this long.
	SnubTimeout time.Duration
	// ChokedNudge: choked by every peer holding a piece of its lease for
	// this long, the download tells each of them again that it is
	// interested (not interested, then interested), at most once per two
	// ChokedNudges a peer. A seeder that reassigns its slots when a choked
	// peer declares interest, as aria2c does, gives the nudged peer a new
	// chance instead of its next periodic round (10 s); other clients
	// take it as the state it is. Zero or negative: never. The default,
	// 250 ms (checked every 250 ms), is what an aria2c-seeded 8-host run
	// needs: a node choked by its last seeders at 2 s idled 1.2 s with
	// a 1 s nudge and was unchoked 1-2 ms after it (issue 15).
	ChokedNudge time.Duration
	// RequestTimeout is the deadline of one block request; an overdue
	// block is requested again from another peer.
	RequestTimeout time.Duration
	// TargetLatency sizes request pipelines: depth = rate*TargetLatency/16KiB,
	// clamped to [MinPipeline, MaxPipeline]; StartPipeline before the first
	// rate sample.
	TargetLatency                           time.Duration
	MinPipeline, MaxPipeline, StartPipeline int
	// MaxInFlightBytes bounds piece buffers held at once (being
	// downloaded, verified or handed to Storage).
	MaxInFlightBytes int64
	// MaxUploadQueue caps queued upload requests per peer; further
	// requests are rejected.
	MaxUploadQueue int
	// MaxStrikes bans a peer after this many failed pieces it contributed
	// to (the first makes it distrusted; see trustBook).
	MaxStrikes int
	// Hashers is the number of SHA-1 goroutines (0: one per CPU, max 4).
	Hashers int
	// LeaseHorizon sizes leases: a worker gets the pieces it can fetch in
	// this time at its measured rate, at least MinLease.
	LeaseHorizon time.Duration
	MinLease     int
	// LeaseTimeout is the lease deadline: a worker (local or remote) that
	// holds pieces and delivers none for this long has missed it; when
	// another worker can take over, its lease returns to the pool and it
	// gets no pieces for LeaseTimeout (doubling on consecutive misses, at
	// most 8 times). Each lease is a watchdog packet with this deadline,
	// and the watchdog decides when it has passed (leaseclock.go).
	LeaseTimeout time.Duration
	// PexInterval is the time between two PEX messages (BEP 11) to one
	// peer; 0 is a minute, as other clients do. A peer's PEX arriving
	// sooner than three quarters of it after its last is ignored.
	PexInterval time.Duration
	// StatusInterval is how often Status snapshots are refreshed.
	StatusInterval time.Duration
	// IdleStatusInterval replaces StatusInterval while there is nothing
	// to do (complete, no peer connected): an idle seeding torrent wakes
	// its loops this rarely. Any event (a peer arriving) brings the
	// StatusInterval back at once in the worker, within one idle interval
	// in the sub-chief's Status. Not above StatusInterval: never slower.
	IdleStatusInterval time.Duration
	// SocketBuffer, if > 0, sets SO_RCVBUF/SO_SNDBUF on peer connections.
	SocketBuffer int
	// Watchdog is the clock of the lease deadlines: every lease is a
	// packet in it, and a lease is returned once the watchdog reports its
	// packet overdue. Whoever reads its Alerts hands the LeaseKind ones to
	// Download.LeaseAlert; the sub-chief also asks it on every
	// StatusInterval tick, so an alert dropped by a lagging reader delays
	// a return by one tick at most. nil: the Download starts a private
	// watchdog and reads its alerts itself.
	Watchdog *watchdog.Watchdog
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with sensible values for every tunable;
// the caller fills InfoHash, Info, PeerID and Storage.
func DefaultConfig() Config {
	return Config{
		MaxPeers:           80,
		MaxDialing:         16,
		DialTimeout:        5 * time.Second,
		HandshakeTimeout:   10 * time.Second,
		IdleTimeout:        3 * time.Minute,
		KeepAlive:          90 * time.Second,
		UploadSlots:        4,
		ChokeInterval:      10 * time.Second,
		OptimisticInterval: 30 * time.Second,
		SnubTimeout:        60 * time.Second,
		ChokedNudge:        250 * time.Millisecond,
		RequestTimeout:     30 * time.Second,
		TargetLatency:      500 * time.Millisecond,
		MinPipeline:        4,
		MaxPipeline:        512,
		StartPipeline:      256,
		MaxInFlightBytes:   24 << 20,
		MaxUploadQueue:     256,
		MaxStrikes:         2,
		LeaseHorizon:       20 * time.Second,
		MinLease:           64,
		LeaseTimeout:       60 * time.Second,
		StatusInterval:     250 * time.Millisecond,
		IdleStatusInterval: 2 * time.Second,
		SocketBuffer:       1 << 20,
	}
}

// ErrConfig is wrapped by every Validate error.
var ErrConfig = errors.New("swarm: invalid config")

// Validate reports the first invalid field.
func (c Config) Validate() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: "+f, append([]any{ErrConfig}, a...)...) }
	switch {
	case c.Info == nil:
		return bad("Info is nil")
	case c.InfoBytes != nil && sha1.Sum(c.InfoBytes) != c.InfoHash:
		return bad("InfoBytes do not hash to InfoHash")
	case c.Info.NumPieces() == 0 || c.Info.PieceLength <= 0:
		return bad("torrent has no pieces")
	case c.Info.PieceLength > 64<<20:
		return bad("piece length %d over 64 MiB", c.Info.PieceLength)
	case c.Storage == nil:
		return bad("Storage is nil")
	case c.MaxPeers <= 0 || c.MaxDialing <= 0:
		return bad("MaxPeers %d and MaxDialing %d must be positive", c.MaxPeers, c.MaxDialing)
	case c.DialTimeout <= 0 || c.HandshakeTimeout <= 0 || c.IdleTimeout <= 0 || c.KeepAlive <= 0:
		return bad("timeouts must be positive")
	case c.UploadSlots <= 0 || c.ChokeInterval <= 0 || c.OptimisticInterval <= 0:
		return bad("choking settings must be positive")
	case c.SnubTimeout <= 0 || c.RequestTimeout <= 0 || c.TargetLatency <= 0:
		return bad("request timeouts must be positive")
	case c.MinPipeline <= 0 || c.MaxPipeline < c.MinPipeline || c.StartPipeline <= 0:
		return bad("pipeline bounds %d..%d start %d", c.MinPipeline, c.MaxPipeline, c.StartPipeline)
	case c.MaxInFlightBytes < c.Info.PieceLength:
		return bad("MaxInFlightBytes %d below one piece", c.MaxInFlightBytes)
	case c.MaxUploadQueue <= 0 || c.MaxStrikes <= 0 || c.Hashers < 0:
		return bad("MaxUploadQueue, MaxStrikes must be positive, Hashers not negative")
	case c.LeaseHorizon <= 0 || c.MinLease <= 0 || c.LeaseTimeout <= 0 || c.StatusInterval <= 0:
		return bad("lease and status settings must be positive")
	}
	return nil
}

// Log is Logger, or a logger that discards when Logger is nil.
func (c Config) Log() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// BufferPool is optionally implemented by a Storage that recycles piece
// buffers (*piecestore.Store does): piece data handed to Submit goes back
// to its pool after the write, so a download allocates no piece buffers in
// steady state.
type BufferPool interface {
	GetBuffer(piece int) []byte
	PutBuffer(b []byte)
}

// BufferUser is a Worker that can take its piece buffers from Storage's
// BufferPool (a remote swarm reading pieces from its node): AddWorker
// hands it the pool when Storage keeps one. Every buffer it delivers in
// an EventPiece comes back to the pool when the piece is stored or
// dropped. UseBuffers is called once, before the worker's first Assign,
// and must be safe for concurrent use with the worker's goroutines.
type BufferUser interface {
	UseBuffers(BufferPool)
}
