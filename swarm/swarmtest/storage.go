package swarmtest

import (
	"bytes"
	"context"
	"errors"
	"sync"

	"flotilla/internal/bitfield"
	"flotilla/metainfo"
)

// Storage is an in-memory swarm.Storage. Submit stores a piece at once and
// reports it on Written (buffered for every piece, so it never blocks); a
// piece submitted twice is stored once. Err is always nil. It is safe for
// concurrent use.
type Storage struct {
	info    *metainfo.Info
	written chan int

	mu      sync.Mutex
	data    []byte
	have    bitfield.Bitfield
	submits int
}

// NewStorage returns a storage holding every piece of data, or none when
// data is nil.
func NewStorage(info *metainfo.Info, data []byte) *Storage {
	return NewPartialStorage(info, data, func(int) bool { return data != nil })
}

// NewPartialStorage returns a storage holding the pieces of data for which
// keep is true.
func NewPartialStorage(info *metainfo.Info, data []byte, keep func(piece int) bool) *Storage {
	n := info.NumPieces()
	m := &Storage{info: info, data: make([]byte, info.Length), have: bitfield.New(n), written: make(chan int, n)}
	for p := range n {
		if keep(p) {
			off := info.PieceOffset(p)
			copy(m.data[off:], data[off:off+info.PieceLen(p)])
			m.have.Set(p)
		}
	}
	return m
}

// Have returns the bitfield of pieces held.
func (m *Storage) Have() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.have)
}

// Submit stores piece p, which must have the piece's length.
func (m *Storage) Submit(_ context.Context, p int, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if int64(len(data)) != m.info.PieceLen(p) {
		return errors.New("swarmtest: wrong piece length")
	}
	if m.has(p) {
		return nil
	}
	m.submits++
	copy(m.data[m.info.PieceOffset(p):], data)
	m.have.Set(p)
	m.written <- p
	return nil
}

// Written delivers each piece once it is stored.
func (m *Storage) Written() <-chan int { return m.written }

// ReadBlock reads part of a piece held.
func (m *Storage) ReadBlock(p int, begin int64, buf []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.has(p) {
		return 0, errors.New("swarmtest: piece not complete")
	}
	off := m.info.PieceOffset(p) + begin
	return copy(buf, m.data[off:off+int64(len(buf))]), nil
}

// Err returns nil: the storage never fails.
func (m *Storage) Err() error { return nil }

// Bytes returns a copy of the payload as stored (zeros where no piece is).
func (m *Storage) Bytes() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.data)
}

// Submits counts the pieces stored by Submit (not those given at creation
// nor repeated submissions).
func (m *Storage) Submits() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.submits
}

func (m *Storage) has(p int) bool { return m.have.Has(p) }
