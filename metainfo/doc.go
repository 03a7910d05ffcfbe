// Package metainfo parses BitTorrent metainfo (.torrent) files and magnet
// URIs, and exposes the piece geometry of a torrent.
//
// Parsing is two-stage. A strict bencode scanner (scan.go) first checks the
// whole input — leading zeros, "-0", unterminated containers, string lengths
// past the end, trailing garbage, nesting deeper than MaxDepth, duplicate
// dictionary keys — and records the exact byte span of the top-level "info"
// dictionary. Only then are values decoded with github.com/jackpal/bencode-go.
// The info-hash is the SHA-1 of that exact span, never of a re-encoding, so
// torrents whose encoding is unusual but legal keep their real identity.
//
// Dictionary keys that are not in sorted order are accepted (many real
// torrents have them); duplicate keys are rejected, because they would make
// the meaning — and, for "info", the hash — ambiguous.
//
// Every file path is validated so that a torrent can never make a caller
// write outside its output directory: no component may be empty, ".", "..",
// or contain '/', '\\' or NUL, and no two files may collide (a duplicate
// path, or a file that is also the parent directory of another file).
//
// Errors wrap ErrMalformed (the bytes are not valid bencode) or ErrInvalid
// (valid bencode that is not a valid torrent or magnet link); test them with
// errors.Is.
package metainfo
