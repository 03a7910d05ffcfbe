package peerwire

import (
	"fmt"

	"flotilla/internal/bitfield"
)

// Bitfield is a BEP 3 piece bitfield, the payload of a bitfield message. It
// is the module's one bitfield (internal/bitfield), shared with the disk
// formats and the swarm; Has, Set, Clear, Count, All, Bytes and Clone are
// its methods.
type Bitfield = bitfield.Bitfield

// New returns an all-zero bitfield for n pieces (n < 0 is treated as 0).
func New(n int) Bitfield { return bitfield.New(n) }

// NewFull returns a bitfield for n pieces with every piece set (spare bits
// clear), e.g. for a have-all message.
func NewFull(n int) Bitfield { return bitfield.Full(n) }

// FromBytes validates p as a bitfield for n pieces and returns a copy.
func FromBytes(p []byte, n int) (Bitfield, error) {
	if err := Validate(p, n); err != nil {
		return nil, err
	}
	return append(Bitfield(nil), p...), nil
}

// Validate checks that b is a bitfield for n pieces: exactly ceil(n/8) bytes
// and no spare bits set. Errors wrap ErrBadBitfield.
func Validate(b []byte, n int) error {
	if err := bitfield.Validate(b, n); err != nil {
		return fmt.Errorf("%w: %v", ErrBadBitfield, err)
	}
	return nil
}
