package peerswarm

// pickerGeometry sizes the picker: pieces and their blocks.
type pickerGeometry struct {
	NumPieces   int
	PieceLength int64 // nominal piece length
	TotalLength int64 // torrent length (last piece may be short)
	BlockSize   int
}

// pieceLen is the length of piece i (the last may be short).
func (g pickerGeometry) pieceLen(i int) int {
	if i == g.NumPieces-1 {
		return int(g.TotalLength - int64(i)*g.PieceLength)
	}
	return int(g.PieceLength)
}

// numBlocks is how many blocks piece i has.
func (g pickerGeometry) numBlocks(i int) int {
	return (g.pieceLen(i) + g.BlockSize - 1) / g.BlockSize
}

// blockLen is the length of block b of piece i.
func (g pickerGeometry) blockLen(i, b int) int {
	n := g.pieceLen(i) - b*g.BlockSize
	if n > g.BlockSize {
		return g.BlockSize
	}
	return n
}

// validBlock reports whether piece i and offset begin/length name a block
// the picker would request, and the block's index.
func (g pickerGeometry) validBlock(i, begin, length int) (int, bool) {
	if i < 0 || i >= g.NumPieces || begin < 0 || begin%g.BlockSize != 0 {
		return 0, false
	}
	b := begin / g.BlockSize
	if b >= g.numBlocks(i) || length != g.blockLen(i, b) {
		return 0, false
	}
	return b, true
}
