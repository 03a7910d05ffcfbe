package metainfo

import "errors"

var (
	// ErrMalformed reports input that is not well-formed bencode.
	ErrMalformed = errors.New("metainfo: malformed bencode")
	// ErrInvalid reports well-formed input that is not a valid torrent or
	// magnet URI (missing or mistyped keys, bad geometry, unsafe paths...).
	ErrInvalid = errors.New("metainfo: invalid")

	// ErrV2Only reports a BitTorrent v2-only (BEP 52) torrent: its info
	// dictionary has a "file tree" but no v1 "pieces". Hybrid torrents
	// (both) are read as v1 torrents. It also matches ErrInvalid.
	ErrV2Only error = &kindError{"metainfo: v2-only (BEP 52) torrent: not supported yet", ErrInvalid}
	// ErrMagnetNotSupported is what Load returns for a magnet link (see
	// IsMagnet): Flotilla cannot yet fetch a torrent's info from peers
	// (BEP 9). It also matches ErrInvalid.
	ErrMagnetNotSupported error = &kindError{"metainfo: magnet links are not supported yet", ErrInvalid}

	// ErrBadTrackerURL reports a tracker URL that cannot be announced to
	// (CheckTrackerURL): the error names the URL and why.
	ErrBadTrackerURL = errors.New("metainfo: unusable tracker URL")
	// ErrNoUsableTracker reports a torrent none of whose tracker URLs is
	// usable, or that lists no tracker at all (ValidateTrackers).
	ErrNoUsableTracker = errors.New("metainfo: no usable tracker")
)

// Warnings. Parse accepts a few departures from the specification that
// other clients (libtorrent, Transmission) accept too, none of which can
// change which bytes are downloaded or where they are written; each one
// is reported in Torrent.Warnings as an error wrapping one of these.
var (
	// ErrTrailingData: bytes after the top-level dictionary (often a
	// newline added by an editor). They are ignored.
	ErrTrailingData = errors.New("metainfo: trailing data after the torrent's dictionary")
	// ErrDuplicateKey: a dictionary key appears twice outside the info
	// dictionary; the first value is used, as libtorrent does. Inside the
	// info dictionary (or a second "info") it stays an error, since it would
	// make the torrent's content and info-hash ambiguous.
	ErrDuplicateKey = errors.New("metainfo: duplicate dictionary key")
	// ErrBadAnnounceList: "announce-list" (or one of its tiers) is not a
	// list of lists of strings, for example an empty string. The malformed
	// part is ignored; "announce" is used if nothing is left.
	ErrBadAnnounceList = errors.New("metainfo: malformed announce-list")
)

// kindError is a sentinel error with its own message that also matches a
// broader kind with errors.Is.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }
