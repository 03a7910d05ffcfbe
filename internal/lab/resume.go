package lab

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"

	"flotilla/internal/bitfield"
)

// CompletionRecord is the durable completion record that piecestore keeps
// for resume (piecestore/doc.go, "Completion record"), read independently
// of piecestore so that a test can see what a killed coordinator had
// durably recorded before anything reopens (and rewrites) it.
type CompletionRecord struct {
	Seq         uint64
	InfoHash    [20]byte
	PieceLength int64
	Total       int64
	NumPieces   int
	Have        []byte // BEP 3 bit order
}

// Has reports whether piece i is recorded complete.
func (r *CompletionRecord) Has(i int) bool {
	return i < r.NumPieces && bitfield.Bitfield(r.Have).Has(i)
}

// Count is the number of pieces recorded complete.
func (r *CompletionRecord) Count() int { return bitfield.Bitfield(r.Have).Count() }

// CompletionRecordPath is where piecestore keeps the record of the torrent
// ih downloaded into dir (coord's --out).
func CompletionRecordPath(dir string, ih [20]byte) string {
	return filepath.Join(dir, ".flotilla", hex.EncodeToString(ih[:])+".resume")
}

const (
	recMagic  = "FLOTREC1"
	recHeader = 8 + 4 + 8 + 20 + 8 + 8 + 4 + 4 // magic .. numFiles
)

var errRecord = errors.New("lab: completion record")

// ReadCompletionRecord reads the record file at path: two slots of equal
// size; the valid one (magic, version 1, CRC-32C) with the highest sequence
// number wins. An all-zero slot is unused.
func ReadCompletionRecord(path string) (*CompletionRecord, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errRecord, err)
	}
	if len(b) == 0 || len(b)%2 != 0 {
		return nil, fmt.Errorf("%w: %s: %d bytes is not two equal slots", errRecord, path, len(b))
	}
	slot := len(b) / 2
	var best *CompletionRecord
	var errs []error
	for i := range 2 {
		s := b[i*slot : (i+1)*slot]
		if allZero(s) {
			continue
		}
		r, err := decodeCompletionSlot(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("slot %d: %w", i, err))
			continue
		}
		if best == nil || r.Seq > best.Seq {
			best = r
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%w: %s: no valid slot %v", errRecord, path, errors.Join(errs...))
	}
	return best, nil
}

func decodeCompletionSlot(b []byte) (*CompletionRecord, error) {
	if len(b) < recHeader+4 || string(b[:8]) != recMagic {
		return nil, errors.New("bad magic or size")
	}
	le := binary.LittleEndian
	if crc32.Checksum(b[:len(b)-4], crc32.MakeTable(crc32.Castagnoli)) != le.Uint32(b[len(b)-4:]) {
		return nil, errors.New("checksum mismatch")
	}
	if v := le.Uint32(b[8:]); v != 1 {
		return nil, fmt.Errorf("version %d", v)
	}
	r := &CompletionRecord{Seq: le.Uint64(b[12:]), PieceLength: int64(le.Uint64(b[40:])), Total: int64(le.Uint64(b[48:]))}
	copy(r.InfoHash[:], b[20:40])
	np, nf := int(le.Uint32(b[56:])), int(le.Uint32(b[60:]))
	if want := recHeader + 16*nf + bitfield.Len(np) + 4; want != len(b) {
		return nil, fmt.Errorf("%d bytes for %d pieces and %d files", len(b), np, nf)
	}
	r.NumPieces = np
	r.Have = append([]byte(nil), b[recHeader+16*nf:len(b)-4]...)
	return r, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
