package lab

import (
	"context"
	"crypto/sha1"
	"fmt"
	"math/bits"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Torrent is a .torrent file made for a payload.
type Torrent struct {
	Path        string   // the .torrent file
	Name        string   // info name
	InfoHash    [20]byte // SHA-1 of the bencoded info dictionary
	PieceLength int64
	Tiers       [][]string // announce tiers
}

// MakeTorrent writes a .torrent for the payload at out with mktorrent
// (piece length a power of two; every tier becomes one -a). The info-hash
// is read back from the file.
func MakeTorrent(ctx context.Context, p *Payload, pieceLength int64, tiers [][]string, out string) (*Torrent, error) {
	if pieceLength < 32<<10 || pieceLength&(pieceLength-1) != 0 {
		return nil, fmt.Errorf("lab: piece length %d is not a power of two >= 32 KiB (mktorrent's minimum)", pieceLength)
	}
	if len(tiers) == 0 {
		return nil, fmt.Errorf("lab: torrent needs at least one tracker tier")
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return nil, fmt.Errorf("lab: torrent: %w", err)
	}
	_ = os.Remove(out) // mktorrent refuses to overwrite
	args := []string{"-l", strconv.Itoa(bits.TrailingZeros64(uint64(pieceLength))), "-d", "-n", p.Name, "-o", out}
	for _, tier := range tiers {
		args = append(args, "-a", strings.Join(tier, ","))
	}
	args = append(args, p.Path)
	cmd := exec.CommandContext(ctx, "mktorrent", args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("lab: mktorrent: %w: %s", err, strings.TrimSpace(string(b)))
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("lab: torrent: %w", err)
	}
	ih, err := InfoHashOf(data)
	if err != nil {
		return nil, fmt.Errorf("lab: %s: %w", out, err)
	}
	return &Torrent{Path: out, Name: p.Name, InfoHash: ih, PieceLength: pieceLength, Tiers: tiers}, nil
}

// InfoHashOf returns the SHA-1 of the exact bytes of a .torrent's info
// dictionary.
func InfoHashOf(torrent []byte) ([20]byte, error) {
	_, spans, err := bdecodeDict(torrent)
	if err != nil {
		return [20]byte{}, err
	}
	s, ok := spans["info"]
	if !ok || torrent[s[0]] != 'd' {
		return [20]byte{}, fmt.Errorf("%w: no info dictionary", errBencode)
	}
	return sha1.Sum(torrent[s[0]:s[1]]), nil
}
