package peerwire

import (
	"fmt"

	"flotilla/internal/bencode"
)

// BEP 9 (ut_metadata): the info dictionary exchanged in 16 KiB pieces over
// BEP 10 extended messages. The extended ID is the one the receiver gave
// for ExtMetadataName in its extension handshake.

// ExtMetadataName is the BEP 10 extension name of BEP 9.
const ExtMetadataName = "ut_metadata"

// MetadataPieceSize is the size of every metadata piece but the last.
const MetadataPieceSize = 16 * 1024

// MaxMetadataSize is the largest metadata_size accepted: an info dictionary
// over 16 MiB (a million pieces) is refused rather than buffered.
const MaxMetadataSize = 16 << 20

// MetadataType is a ut_metadata msg_type.
type MetadataType int

// The ut_metadata message types.
const (
	MetadataRequest MetadataType = 0
	MetadataData    MetadataType = 1
	MetadataReject  MetadataType = 2
)

// MetadataMsg is one ut_metadata message. TotalSize and Data are set for
// MetadataData only; Data aliases the parsed payload.
type MetadataMsg struct {
	Type      MetadataType
	Piece     int
	TotalSize int
	Data      []byte
}

// ErrBadMetadataMsg: a ut_metadata message that is not a bencoded
// dictionary with a known msg_type and an in-range piece (plus total_size
// and at most 16 KiB of data for a data message).
var ErrBadMetadataMsg error = &protoErr{"peerwire: bad ut_metadata message"}

// MetadataPieces is how many pieces metadata of size bytes has.
func MetadataPieces(size int) int {
	return (size + MetadataPieceSize - 1) / MetadataPieceSize
}

// AppendTo appends m's payload (the bytes after the extended ID) to dst:
// the canonical bencoded header, then Data for a data message.
func (m MetadataMsg) AppendTo(dst []byte) []byte {
	dst = append(dst, 'd')
	dst = appendString(dst, "msg_type")
	dst = appendInt(dst, int64(m.Type))
	dst = appendString(dst, "piece")
	dst = appendInt(dst, int64(m.Piece))
	if m.Type == MetadataData {
		dst = appendString(dst, "total_size")
		dst = appendInt(dst, int64(m.TotalSize))
	}
	dst = append(dst, 'e')
	if m.Type == MetadataData {
		dst = append(dst, m.Data...)
	}
	return dst
}

// ParseMetadataMsg decodes a ut_metadata payload with the strict bencode
// reader. Unknown keys are skipped; a missing or unknown msg_type, a piece
// outside the metadata (total_size up to MaxMetadataSize), data longer
// than a piece or trailing bytes after a request or reject give
// ErrBadMetadataMsg. The data's length against total_size is the
// receiver's to check: only it knows which size it expects.
func ParseMetadataMsg(b []byte) (MetadataMsg, error) {
	m := MetadataMsg{Type: -1, Piece: -1, TotalSize: -1}
	d := bencode.NewDecoder(b, bencode.Options{
		MaxDepth:     maxBencodeDepth,
		MaxStringLen: maxExtString,
		Kind:         ErrBadMetadataMsg,
		Duplicate:    bencode.KeepFirst,
	})
	err := d.Dict(func(key []byte) error {
		switch string(key) {
		case "msg_type":
			return optInt(d, func(v int64) {
				if v >= 0 && v <= 2 {
					m.Type = MetadataType(v)
				}
			})
		case "piece":
			return optInt(d, func(v int64) {
				if v >= 0 && v < int64(MetadataPieces(MaxMetadataSize)) {
					m.Piece = int(v)
				}
			})
		case "total_size":
			return optInt(d, func(v int64) {
				if v > 0 && v <= MaxMetadataSize {
					m.TotalSize = int(v)
				}
			})
		}
		return nil
	})
	if err != nil {
		return MetadataMsg{}, err
	}
	rest := b[d.Pos():]
	switch {
	case m.Type < 0 || m.Piece < 0:
		return MetadataMsg{}, fmt.Errorf("%w: no valid msg_type or piece", ErrBadMetadataMsg)
	case m.Type != MetadataData:
		if len(rest) > 0 {
			return MetadataMsg{}, fmt.Errorf("%w: %d bytes after a msg_type %d", ErrBadMetadataMsg, len(rest), m.Type)
		}
		m.TotalSize = 0
	case m.TotalSize < 0:
		return MetadataMsg{}, fmt.Errorf("%w: data without a valid total_size", ErrBadMetadataMsg)
	case m.Piece >= MetadataPieces(m.TotalSize):
		return MetadataMsg{}, fmt.Errorf("%w: piece %d past total_size %d", ErrBadMetadataMsg, m.Piece, m.TotalSize)
	case len(rest) > MetadataPieceSize:
		return MetadataMsg{}, fmt.Errorf("%w: %d bytes of data in one piece", ErrBadMetadataMsg, len(rest))
	default:
		m.Data = rest
	}
	return m, nil
}
