package swarmtest

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"flotilla/metainfo"
)

// Torrent is a single-file torrent ("payload.bin", no trackers) and its
// payload.
type Torrent struct {
	*metainfo.Torrent
	Data []byte // the payload, Info.Length bytes
}

// NewTorrent builds a torrent of size pseudo-random bytes in pieces of
// pieceLen. The bytes depend only on size and pieceLen, so a test sees the
// same payload on every run.
func NewTorrent(t testing.TB, size int, pieceLen int64) *Torrent {
	t.Helper()
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(uint64(size), uint64(pieceLen)))
	for i := 0; i < len(data); i += 8 {
		v := r.Uint64()
		for k := 0; k < 8 && i+k < len(data); k++ {
			data[i+k] = byte(v >> (8 * k))
		}
	}
	raw, err := metainfo.Build("payload.bin", []metainfo.File{{Length: int64(size)}}, pieceLen, nil, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tor, err := metainfo.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return &Torrent{Torrent: tor, Data: data}
}

// Piece returns piece i of the payload (a slice of Data, not a copy).
func (tt *Torrent) Piece(i int) []byte {
	off := tt.Info.PieceOffset(i)
	return tt.Data[off : off+tt.Info.PieceLen(i)]
}
