// Package metainfo parses BitTorrent metainfo (.torrent) files and magnet
// URIs, and exposes the piece geometry of a torrent.
//
// Parsing is two-stage. The module's strict bencode reader
// (internal/bencode, driven by scan.go) first checks the whole input —
// leading zeros, "-0", unterminated containers, string lengths past the
// end, trailing garbage, nesting deeper than MaxDepth, duplicate dictionary
// keys — and records the exact byte spans of the top-level keys Parse
// reads. Only then are those values decoded with
// github.com/jackpal/bencode-go. The info-hash is the SHA-1 of the exact
// span of "info", never of a re-encoding, so torrents whose encoding is
// unusual but legal keep their real identity.
//
// Dictionary keys that are not in sorted order are accepted (many real
// torrents have them). Inside the info dictionary (and for "info" itself)
// duplicate keys are rejected, because they would make the content and the
// hash ambiguous. Where libtorrent and Transmission are tolerant and no
// safety is at stake, Parse is too, and says so in Torrent.Warnings: bytes
// after the top-level dictionary (ErrTrailingData), a duplicate key outside
// "info" (ErrDuplicateKey; the first value wins), a malformed announce-list
// (ErrBadAnnounceList; the malformed part is ignored). ParseInfo, for info
// dictionaries received from peers, stays strict.
//
// Not supported yet, with errors that say so: v2-only (BEP 52) torrents
// (ErrV2Only) and magnet links given to Load (ErrMagnetNotSupported; see
// IsMagnet). CheckTrackerURL and Torrent.ValidateTrackers tell which
// tracker URLs can be announced to (http, https, udp) and why not.
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
