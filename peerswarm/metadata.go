package peerswarm

import (
	"fmt"

	"flotilla/peerwire"
)

// ourMetadataID is the extended message ID peers use for ut_metadata
// messages to us (BEP 9), advertised in our extension handshake.
const ourMetadataID = 2

// serveMetadata answers a peer's ut_metadata message: a request for a
// piece of the info dictionary gets the piece, within a bound of requests
// per connection (each piece a few times over: a peer asking more is
// rejected from then on); data and rejects are ignored (we never ask).
// A malformed message is a protocol error.
func (u *uploader) serveMetadata(t *peerTable, p *peer, payload []byte) error {
	m, err := peerwire.ParseMetadataMsg(payload)
	if err != nil {
		return err
	}
	if m.Type != peerwire.MetadataRequest || p.utMetadata == 0 {
		return nil
	}
	n := peerwire.MetadataPieces(len(u.infoBytes))
	if m.Piece >= n && u.infoBytes != nil {
		return fmt.Errorf("%w: metadata piece %d of %d", peerwire.ErrBadMetadataMsg, m.Piece, n)
	}
	reply := peerwire.MetadataMsg{Type: peerwire.MetadataReject, Piece: m.Piece}
	if p.metaAsked++; u.infoBytes != nil && p.metaAsked <= 4*n+8 {
		lo := m.Piece * peerwire.MetadataPieceSize
		hi := min(lo+peerwire.MetadataPieceSize, len(u.infoBytes))
		reply = peerwire.MetadataMsg{Type: peerwire.MetadataData, Piece: m.Piece, TotalSize: len(u.infoBytes), Data: u.infoBytes[lo:hi]}
	}
	t.send(p, peerwire.Message{ID: peerwire.Extended, ExtID: p.utMetadata, ExtPayload: reply.AppendTo(nil)})
	return nil
}
