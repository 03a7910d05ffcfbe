package metainfo

import "errors"

var (
	// ErrMalformed reports input that is not well-formed bencode.
	ErrMalformed = errors.New("metainfo: malformed bencode")
	// ErrInvalid reports well-formed input that is not a valid torrent or
	// magnet URI (missing or mistyped keys, bad geometry, unsafe paths...).
	ErrInvalid = errors.New("metainfo: invalid")
)
