package swarm

import "context"

// Piece sources: which worker delivered each piece (the dashboard's piece
// map). A byte per piece, an index into a table of names, so that the
// record of a 10,000-piece torrent costs 10 kB and is not part of Status
// (which is copied on every tick).
const (
	// SourceDisk names the pieces that were on disk when the download
	// started (PieceSources.Names[0]).
	SourceDisk = "disk"
	// SourceNone marks a piece no worker has delivered yet.
	SourceNone = 0xff
	// maxSourceNames bounds the names table; workers beyond it share its
	// last name, sourceOther.
	maxSourceNames = SourceNone
	sourceOther    = "other"
)

// PieceSources is a snapshot of which worker delivered each piece:
// Pieces[i] indexes Names (a worker's name, SourceDisk for a piece on
// disk at the start), or is SourceNone. A piece counts from when the
// sub-chief accepted it (verified, maybe not yet written).
type PieceSources struct {
	Names  []string
	Pieces []byte
}

// pieceSources is the sub-chief's record (owned by its loop).
type pieceSources struct {
	names []string
	index map[string]byte
	src   []byte
}

func newPieceSources(n int, onDisk func(int) bool) *pieceSources {
	p := &pieceSources{names: []string{SourceDisk}, index: map[string]byte{SourceDisk: 0}, src: make([]byte, n)}
	for i := range p.src {
		if !onDisk(i) {
			p.src[i] = SourceNone
		}
	}
	return p
}

// set records that worker name delivered piece i. A worker that comes
// back under the same name (a swarm node rejoining) keeps its index.
func (p *pieceSources) set(i int, name string) {
	k, ok := p.index[name]
	if !ok {
		if len(p.names) >= maxSourceNames-1 {
			name = sourceOther
		}
		if k, ok = p.index[name]; !ok {
			k = byte(len(p.names))
			p.names = append(p.names, name)
			p.index[name] = k
		}
	}
	p.src[i] = k
}

func (p *pieceSources) snapshot() PieceSources {
	return PieceSources{Names: append([]string(nil), p.names...), Pieces: append([]byte(nil), p.src...)}
}

// PieceSources returns which worker delivered each piece, made by the
// sub-chief's loop. After Close it returns ErrClosed.
func (d *Download) PieceSources(ctx context.Context) (PieceSources, error) {
	reply := make(chan PieceSources, 1)
	d.loop.Post(func() { reply <- d.sources.snapshot() })
	select {
	case ps := <-reply:
		return ps, nil
	case <-d.loop.Done():
		return PieceSources{}, ErrClosed
	case <-ctx.Done():
		return PieceSources{}, ctx.Err()
	}
}
