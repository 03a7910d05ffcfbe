// Package peerwire implements the BitTorrent peer wire protocol: the BEP 3
// handshake and messages, the BEP 6 fast extension (have-all, have-none,
// reject, allowed-fast, suggest, and the canonical allowed-fast set), the
// BEP 10 extension protocol handshake, and the payloads of two extended
// messages: BEP 9 ut_metadata (metadata.go) and BEP 11 ut_pex (pex.go).
//
// The package is a passive codec: it starts no goroutines, does no I/O other
// than on the io.Reader/io.Writer it is given, and of the project imports
// only the shared primitives internal/bitfield and internal/bencode. A
// Reader and a Writer are each meant to be used by one goroutine (typically
// a connection's read loop and write loop); they are not safe for
// concurrent use.
//
// # Strictness
//
// The Reader validates every message against Limits before reading its
// payload, so a hostile peer cannot make it allocate or buffer more than the
// largest legal message:
//
//   - a length prefix over the largest legal message for its ID (piece:
//     9+MaxBlock, bitfield: 1+ceil(NumPieces/8), extended and unknown IDs:
//     MaxMessage) gives ErrMessageTooLarge; the connection must be closed;
//   - a fixed-size message (choke, have, request, port, ...) whose payload
//     length does not match its ID gives ErrBadLength (when too long it also
//     matches ErrMessageTooLarge);
//   - a bitfield of the wrong length or with spare bits set gives
//     ErrBadBitfield (when too long it also matches ErrMessageTooLarge);
//   - a request, cancel, reject or piece with length 0, over MaxBlock, or
//     outside the torrent (index >= NumPieces, begin+length past the piece)
//     gives ErrBadRequest; have, suggest and allowed-fast with index >=
//     NumPieces give ErrBadIndex;
//   - a handshake whose pstrlen/pstr is not 19 "BitTorrent protocol" gives
//     ErrBadHandshake.
//
// All of these satisfy errors.Is(err, ErrProtocol). Short reads surface as
// io.EOF (clean close at a message boundary) or io.ErrUnexpectedEOF.
//
// Unknown message IDs are returned (not an error) with ID set and the raw
// payload in Message.Payload, limited to MaxMessage bytes, for forward
// compatibility: callers should ignore them. Fast-extension messages are
// decoded whether or not the fast extension was negotiated; BEP 6 says a peer
// that sends them without negotiating should be disconnected, which is the
// caller's policy (see Handshake.SupportsFast).
//
// # Buffers
//
// Message.Block, Message.Bitfield, Message.ExtPayload and Message.Payload
// returned by Reader.ReadMessage alias the Reader's internal buffer and are
// valid only until the next call to ReadMessage. Copy what must be kept.
// In steady state ReadMessage performs no allocations.
//
// Writer batches messages in its buffer until Flush (or until the buffer
// fills). WritePieceFrom reads a block in place into that buffer, so an
// uploader reading from disk copies nothing more and writes many pieces per
// system call; WritePiece, for a block already in memory, sends the pending
// bytes, the piece header and the block in one vectored write (writev on a
// *net.TCPConn) without copying the block. SetWriteTimeout puts a deadline
// on every write.
package peerwire
