package peerwire

import (
	"fmt"

	"flotilla/internal/bitfield"
)

// Limits bound what a Reader accepts from a peer. The zero value of each
// field means "unknown / default" as documented per field.
type Limits struct {
	// NumPieces is the torrent's piece count. 0 means unknown (e.g. a magnet
	// link before the metadata arrived): bitfields are then only limited by
	// MaxMessage and not checked for spare bits, and piece indexes are not
	// range-checked (the caller must check them once it knows the count).
	NumPieces int
	// PieceLength is the nominal piece length; 0 means unknown (begin+length
	// is then only checked against MaxBlock, not against the piece).
	PieceLength int64
	// TotalLength is the torrent's total length in bytes, used to compute the
	// last (short) piece's length. 0 means NumPieces*PieceLength.
	TotalLength int64
	// MaxBlock is the largest block length accepted in request, cancel,
	// reject and piece messages. 0 means MaxAcceptedBlock (32 KiB).
	MaxBlock uint32
	// MaxMessage caps extended messages, unknown IDs, and bitfields when
	// NumPieces is unknown. 0 means DefaultMaxMessage (1 MiB).
	MaxMessage uint32
}

// DefaultLimits returns Limits for a torrent with known geometry and default
// caps.
func DefaultLimits(numPieces int, pieceLength, totalLength int64) Limits {
	return Limits{NumPieces: numPieces, PieceLength: pieceLength, TotalLength: totalLength}
}

// Validate reports inconsistent limits.
func (l Limits) Validate() error {
	switch {
	case l.NumPieces < 0:
		return fmt.Errorf("peerwire: limits: negative NumPieces %d", l.NumPieces)
	case l.PieceLength < 0 || l.TotalLength < 0:
		return fmt.Errorf("peerwire: limits: negative length")
	case l.NumPieces > 0 && l.PieceLength > 0 && l.TotalLength > 0 &&
		(l.TotalLength > int64(l.NumPieces)*l.PieceLength || l.TotalLength <= int64(l.NumPieces-1)*l.PieceLength):
		return fmt.Errorf("peerwire: limits: total length %d inconsistent with %d pieces of %d",
			l.TotalLength, l.NumPieces, l.PieceLength)
	case l.MaxBlock > 1<<24:
		return fmt.Errorf("peerwire: limits: MaxBlock %d too large", l.MaxBlock)
	}
	return nil
}

func (l *Limits) maxBlock() uint32 {
	if l.MaxBlock == 0 {
		return MaxAcceptedBlock
	}
	return l.MaxBlock
}

func (l *Limits) maxMessage() uint32 {
	if l.MaxMessage == 0 {
		return DefaultMaxMessage
	}
	return l.MaxMessage
}

// bitfieldLen is the exact bitfield payload length, or -1 if unknown.
func (l *Limits) bitfieldLen() int {
	if l.NumPieces <= 0 {
		return -1
	}
	return bitfield.Len(l.NumPieces)
}

// PieceLen returns the length of piece i, or 0 if unknown or out of range.
func (l Limits) PieceLen(i int) int64 {
	if l.PieceLength <= 0 || i < 0 || (l.NumPieces > 0 && i >= l.NumPieces) {
		return 0
	}
	if l.NumPieces > 0 && i == l.NumPieces-1 && l.TotalLength > 0 {
		last := l.TotalLength - int64(i)*l.PieceLength
		if last > 0 && last < l.PieceLength {
			return last
		}
	}
	return l.PieceLength
}

// ValidateRequest checks a request/cancel/reject (or a piece's index, begin
// and block length) against l: length in 1..MaxBlock, index < NumPieces
// (if known), begin+length <= piece length (if known). Errors wrap
// ErrBadRequest.
func (l Limits) ValidateRequest(index, begin, length uint32) error {
	var pieceLen func(int) int64
	if l.PieceLength > 0 {
		pieceLen = l.PieceLen
	}
	return validateRequest(index, begin, length, l.NumPieces, l.maxBlock(), pieceLen)
}

// validateRequest checks a block reference: length in 1..maxBlock, index <
// numPieces (skipped if numPieces <= 0), begin+length <= pieceLen(index)
// (skipped if pieceLen is nil). Errors wrap ErrBadRequest.
func validateRequest(index, begin, length uint32, numPieces int, maxBlock uint32, pieceLen func(int) int64) error {
	if length == 0 {
		return fmt.Errorf("%w: zero length (piece %d begin %d)", ErrBadRequest, index, begin)
	}
	if length > maxBlock {
		return fmt.Errorf("%w: length %d over %d (piece %d begin %d)", ErrBadRequest, length, maxBlock, index, begin)
	}
	if numPieces > 0 && uint64(index) >= uint64(numPieces) {
		return fmt.Errorf("%w: piece %d out of range (%d pieces)", ErrBadRequest, index, numPieces)
	}
	if pieceLen != nil {
		if pl := pieceLen(int(index)); uint64(begin)+uint64(length) > uint64(max(pl, 0)) {
			return fmt.Errorf("%w: block %d+%d beyond piece %d of length %d", ErrBadRequest, begin, length, index, pl)
		}
	}
	return nil
}

// ValidateIndex checks a have/suggest/allowed-fast piece index against
// NumPieces (if known). Errors wrap ErrBadIndex.
func (l Limits) ValidateIndex(index uint32) error {
	if l.NumPieces > 0 && uint64(index) >= uint64(l.NumPieces) {
		return fmt.Errorf("%w: piece %d (%d pieces)", ErrBadIndex, index, l.NumPieces)
	}
	return nil
}

// MaxLength returns the largest legal length prefix (ID byte + payload) of a
// message with the given ID under l.
func (l Limits) MaxLength(id MsgID) uint32 {
	switch id {
	case Choke, Unchoke, Interested, NotInterested, HaveAll, HaveNone:
		return 1
	case Have, Suggest, AllowedFast:
		return 5
	case Request, Cancel, Reject:
		return 13
	case Port:
		return 3
	case Piece:
		return 9 + l.maxBlock()
	case BitfieldMsg:
		if n := l.bitfieldLen(); n >= 0 {
			return 1 + uint32(n)
		}
	}
	return l.maxMessage()
}
