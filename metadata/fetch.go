package metadata

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"flotilla/metainfo"
	"flotilla/peerwire"
	"flotilla/peerwire/mse"
)

// maxAsk is how many pieces one peer is asked for at a time.
const maxAsk = 4

// ErrNoMetadata is returned when every peer found was tried and none gave
// metadata matching the info-hash; the error says how many were tried.
var ErrNoMetadata = errors.New("metadata: no peer gave the torrent's info")

// ErrTooLarge reports a peer advertising metadata_size over Config.MaxSize;
// such peers are dropped, and it is only returned wrapped in ErrNoMetadata's
// explanation.
var ErrTooLarge = errors.New("metadata: metadata_size too large")

// Config is what Fetch needs besides the magnet.
type Config struct {
	// PeerID is ours, sent in the handshake.
	PeerID [20]byte
	// Peers are addresses to try besides the magnet's x.pe.
	Peers []netip.AddrPort
	// Announce, if set, is called (and called again every Reannounce while
	// the fetch lacks peers) to find peers from the magnet's trackers; it
	// returns what the trackers gave.
	Announce func(ctx context.Context) []netip.AddrPort
	// Reannounce is the time between calls of Announce.
	Reannounce time.Duration
	// MaxSize is the largest info dictionary accepted.
	MaxSize int
	// MaxConns is how many peers are dialed or connected at once.
	MaxConns int
	// Encryption is how peers are dialed: mse.Off (the zero value) in
	// plaintext, mse.Require with MSE/PE (RC4) only, mse.Prefer in
	// plaintext first and with MSE when the peer drops that (see connect).
	Encryption mse.Policy
	// DialTimeout bounds a TCP connect; PeerTimeout a peer's silence.
	DialTimeout, PeerTimeout time.Duration
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with a fresh peer id and the limits other
// clients use.
func DefaultConfig() Config {
	return Config{Reannounce: 15 * time.Second, MaxSize: peerwire.MaxMetadataSize, MaxConns: 20,
		DialTimeout: 10 * time.Second, PeerTimeout: 30 * time.Second}
}

// Validate reports a Config Fetch cannot use.
func (c Config) Validate() error {
	if c.MaxSize <= 0 || c.MaxSize > peerwire.MaxMetadataSize || c.MaxConns <= 0 || c.DialTimeout <= 0 ||
		c.PeerTimeout <= 0 || (c.Announce != nil && c.Reannounce <= 0) {
		return fmt.Errorf("metadata: invalid config %+v", c)
	}
	return nil
}

// fetcher is the state of one Fetch, owned by Fetch's goroutine.
type fetcher struct {
	cfg    Config
	hash   [20]byte
	events chan event
	log    *slog.Logger

	queue   []netip.AddrPort // addresses not yet dialed
	tried   map[netip.AddrPort]bool
	running int // dials and connections not yet gone
	peers   map[*conn]bool
	dropped int

	size   int      // the metadata_size of the shared assembly, 0 before the first peer
	pieces [][]byte // the shared assembly
	solo   bool     // the shared assembly failed: every peer gives its own copy

	keep bool                // FetchKeep: hand the connections over at the end
	kept []peerwire.Handover // what collect gathered
}

// Fetch gets the info dictionary for m from peers and returns the torrent,
// with m's trackers as its announce-list (one tier each, in order). It
// gives up with ErrNoMetadata when no peer is left to try and none is
// expected from the trackers (Config.Announce nil), or when ctx ends.
func Fetch(ctx context.Context, m *metainfo.Magnet, cfg Config) (*metainfo.Torrent, error) {
	t, _, err := fetch(ctx, m, cfg, false)
	return t, err
}

// FetchKeep is Fetch, and then returns the connections of the peers that
// took part (handshakes done, our extension handshake and HaveNone sent)
// instead of closing them, for the download's swarm to adopt: the peer's
// messages that came meanwhile (bitfield, haves, extension handshake) are
// replayed first on each Conn. The caller owns them and must close those
// it does not hand on.
func FetchKeep(ctx context.Context, m *metainfo.Magnet, cfg Config) (*metainfo.Torrent, []peerwire.Handover, error) {
	return fetch(ctx, m, cfg, true)
}

func fetch(ctx context.Context, m *metainfo.Magnet, cfg Config, keep bool) (*metainfo.Torrent, []peerwire.Handover, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	f := &fetcher{cfg: cfg, hash: m.InfoHash, events: make(chan event), tried: map[netip.AddrPort]bool{},
		peers: map[*conn]bool{}, log: cfg.Logger, keep: keep}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	for _, pe := range m.Peers {
		if ap, err := netip.ParseAddrPort(pe); err == nil {
			f.add(ap)
		}
	}
	for _, ap := range cfg.Peers {
		f.add(ap)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	var found chan []netip.AddrPort // nil without trackers: nothing more will come
	if cfg.Announce != nil {
		found = make(chan []netip.AddrPort)
		wg.Go(func() { f.announceLoop(ctx, found) })
	}
	info, err := f.run(ctx, &wg, found)
	if err != nil {
		return nil, nil, err
	}
	t, err := torrentOf(info, m)
	if err != nil {
		closeAll(f.kept)
		return nil, nil, err
	}
	return t, f.kept, nil
}

// closeAll closes handed-over connections nobody took.
func closeAll(hs []peerwire.Handover) {
	for _, h := range hs {
		h.Conn.Close()
	}
}

// collect stops every connected peer's reader and writer and gathers its
// connection for the handover (f.kept); the others end with ctx.
func (f *fetcher) collect(ctx context.Context) {
	waiting := map[*conn]bool{}
	for c := range f.peers {
		close(c.keep)
		c.nc.SetReadDeadline(time.Now()) // interrupts its reader
		waiting[c] = true
	}
	for len(waiting) > 0 {
		select {
		case <-ctx.Done():
			return // the rest close themselves
		case e := <-f.events:
			if e.typ != evGone || !waiting[e.c] {
				if e.typ == evGone {
					f.running--
				}
				continue
			}
			f.running--
			delete(waiting, e.c)
			if e.kept != nil {
				f.kept = append(f.kept, *e.kept)
			} else {
				f.log.Debug("metadata: connection not handed over", "peer", e.c.addr, "err", e.err)
			}
		}
	}
}

func (f *fetcher) add(ap netip.AddrPort) {
	if ap.IsValid() && ap.Port() != 0 && !f.tried[ap] {
		f.tried[ap] = true
		f.queue = append(f.queue, ap)
	}
}

// announceLoop asks the trackers for peers now and every Reannounce.
func (f *fetcher) announceLoop(ctx context.Context, found chan<- []netip.AddrPort) {
	t := time.NewTicker(f.cfg.Reannounce)
	defer t.Stop()
	for {
		peers := f.cfg.Announce(ctx)
		select {
		case found <- peers:
		case <-ctx.Done():
			return
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// run is the owner loop: dial, assign pieces, collect them, verify.
func (f *fetcher) run(ctx context.Context, wg *sync.WaitGroup, found <-chan []netip.AddrPort) ([]byte, error) {
	for {
		for f.running < f.cfg.MaxConns && len(f.queue) > 0 {
			ap := f.queue[0]
			f.queue = f.queue[1:]
			f.running++
			wg.Go(func() { f.dialPeer(ctx, ap) })
		}
		if f.running == 0 && len(f.queue) == 0 && found == nil {
			return nil, fmt.Errorf("%w: %d peers tried, %d dropped for bad or missing metadata", ErrNoMetadata, len(f.tried), f.dropped)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (%d peers tried): %w", ErrNoMetadata, len(f.tried), context.Cause(ctx))
		case peers := <-found:
			for _, ap := range peers {
				f.add(ap)
			}
		case e := <-f.events:
			if info := f.handle(e); info != nil {
				if f.keep {
					f.collect(ctx)
				}
				return info, nil
			}
		}
	}
}

// handle applies one event and returns the verified info dictionary once
// it is complete.
func (f *fetcher) handle(e event) []byte {
	c := e.c
	switch e.typ {
	case evGone:
		f.running--
		if f.peers[c] {
			delete(f.peers, c)
			f.reassign()
		}
		f.log.Debug("metadata: peer gone", "peer", c.addr, "err", e.err)
	case evReady:
		if c.size <= 0 || c.size > f.cfg.MaxSize {
			f.drop(c, fmt.Errorf("%w: %d bytes (limit %d)", ErrTooLarge, c.size, f.cfg.MaxSize))
			return nil
		}
		if f.size == 0 {
			f.size = c.size
			f.pieces = make([][]byte, peerwire.MetadataPieces(f.size))
		}
		if c.size != f.size {
			f.drop(c, fmt.Errorf("metadata_size %d, others said %d", c.size, f.size))
			return nil
		}
		f.peers[c] = true
		f.assign(c)
	case evMsg:
		if !f.peers[c] {
			return nil
		}
		return f.receive(c, e.msg)
	}
	return nil
}

// pieceLen is the length of metadata piece i.
func (f *fetcher) pieceLen(i int) int {
	return min(peerwire.MetadataPieceSize, f.size-i*peerwire.MetadataPieceSize)
}

func (f *fetcher) receive(c *conn, m peerwire.MetadataMsg) []byte {
	if !c.asked[m.Piece] {
		f.drop(c, fmt.Errorf("piece %d not asked for", m.Piece))
		return nil
	}
	delete(c.asked, m.Piece)
	if m.Type == peerwire.MetadataReject {
		f.drop(c, errors.New("rejected a metadata request"))
		return nil
	}
	if m.TotalSize != f.size || len(m.Data) != f.pieceLen(m.Piece) {
		f.drop(c, fmt.Errorf("piece %d of %d bytes, total_size %d; want %d of %d", m.Piece, len(m.Data), m.TotalSize, f.pieceLen(m.Piece), f.size))
		return nil
	}
	pieces := f.pieces
	if f.solo {
		pieces = c.solo
	}
	pieces[m.Piece] = m.Data
	info, ok := f.complete(pieces)
	switch {
	case ok && info != nil:
		return info
	case ok && f.solo:
		f.drop(c, errors.New("its metadata does not match the info-hash"))
		return nil
	case ok:
		f.log.Debug("metadata: assembly from several peers fails the hash; asking each for a whole copy")
		f.solo = true
		for p := range f.peers {
			p.solo = make([][]byte, len(f.pieces))
		}
		f.reassign()
		return nil
	}
	f.assign(c)
	return nil
}

// complete reports whether every piece is in, and then the info dictionary
// if it matches the info-hash.
func (f *fetcher) complete(pieces [][]byte) ([]byte, bool) {
	info := make([]byte, 0, f.size)
	for _, p := range pieces {
		if p == nil {
			return nil, false
		}
		info = append(info, p...)
	}
	if sha1.Sum(info) != f.hash {
		return nil, true
	}
	return info, true
}

// assign asks c for up to maxAsk pieces: in the shared assembly those
// nobody has been asked for first, then (the end) those others are slow
// with; in solo mode those missing from c's own copy.
func (f *fetcher) assign(c *conn) {
	pieces := f.pieces
	if f.solo {
		if c.solo == nil {
			c.solo = make([][]byte, len(f.pieces))
		}
		pieces = c.solo
	}
	for pass := 0; pass < 2 && len(c.asked) < maxAsk; pass++ {
		for i := range pieces {
			if len(c.asked) >= maxAsk {
				break
			}
			if pieces[i] != nil || c.asked[i] || (pass == 0 && !f.solo && f.askedOfAnyone(i)) {
				continue
			}
			c.asked[i] = true
			c.reqs <- i // never blocks: len(c.asked) <= maxAsk = cap(c.reqs)
		}
	}
}

func (f *fetcher) askedOfAnyone(i int) bool {
	for p := range f.peers {
		if p.asked[i] {
			return true
		}
	}
	return false
}

func (f *fetcher) reassign() {
	for p := range f.peers {
		f.assign(p)
	}
}

// drop disconnects a peer that broke the protocol or gave bad metadata.
func (f *fetcher) drop(c *conn, why error) {
	f.log.Debug("metadata: dropping peer", "peer", c.addr, "why", why)
	f.dropped++
	delete(f.peers, c)
	if !c.closed {
		c.closed = true
		c.nc.Close()
	}
	f.reassign()
}
