package peerswarm

import (
	"fmt"
	"time"

	"flotilla/internal/bitfield"
	"flotilla/peerwire"
)

// uploader is the upload side of the swarm: what we advertise (the pieces
// stored, announced to every peer), who gets an upload slot (the choker's
// rounds, a free slot at once for a newly interested peer) and serving
// requests within MaxUploadQueue. The blocks themselves are read from
// Storage by each connection's writer (wire.writeLoop). Owned by the
// swarm's run goroutine; it reaches peers only through the table it is
// given.
type uploader struct {
	slots         int // UploadSlots
	maxQueue      int // MaxUploadQueue: requests queued per peer
	chokeInterval time.Duration
	port          int // our listening port for the extension handshake, 0 none
	choker        *choker
	lastChoke     time.Time
	numPieces     int
	advertised    bitfield.Bitfield // pieces stored (bitfield we send)
	nAdvertised   int
	infoBytes     []byte // the info dictionary served over ut_metadata (metadata.go), nil none
	pex           bool   // advertise ut_pex (pex.go): not for a private torrent
}

func newUploader(slots, maxQueue int, chokeInterval time.Duration, ch *choker, numPieces int) *uploader {
	return &uploader{slots: slots, maxQueue: maxQueue, chokeInterval: chokeInterval, choker: ch,
		numPieces: numPieces, advertised: bitfield.New(numPieces)}
}

// seeding reports whether every piece is stored.
func (u *uploader) seeding() bool { return u.nAdvertised == u.numPieces }

// has reports whether piece i is stored (advertised).
func (u *uploader) has(i int) bool { return u.advertised.Has(i) }

// advertise records piece i as stored, and tells it to every peer in t
// lacking it.
func (u *uploader) advertise(i int, t *peerTable) {
	u.advertised.Set(i)
	u.nAdvertised++
	for p := range t.all() {
		if !p.has(i) {
			t.send(p, peerwire.Message{ID: peerwire.Have, Index: uint32(i)})
		}
	}
}

// greet sends a new peer our extension handshake and what we have. A
// peer greeted already (a handed-over connection, Adopt) was told we have
// nothing (HaveNone, or no bitfield): it hears of what we have as haves,
// since a second bitfield, HaveAll or HaveNone breaks BEP 6.
func (u *uploader) greet(t *peerTable, p *peer, greeted bool) {
	var init []peerwire.Message
	if p.ext {
		init = append(init, peerwire.Message{ID: peerwire.Extended, ExtID: peerwire.ExtHandshakeID, ExtPayload: u.extHandshake()})
	}
	switch {
	case greeted:
		for i := range u.numPieces {
			if u.advertised.Has(i) {
				init = append(init, peerwire.Message{ID: peerwire.Have, Index: uint32(i)})
			}
		}
	case p.fast && u.seeding():
		init = append(init, peerwire.Message{ID: peerwire.HaveAll})
	case p.fast && u.nAdvertised == 0:
		init = append(init, peerwire.Message{ID: peerwire.HaveNone})
	case u.nAdvertised > 0:
		init = append(init, peerwire.Message{ID: peerwire.BitfieldMsg, Bitfield: append([]byte(nil), u.advertised...)})
	}
	t.send(p, init...)
}

// extHandshake is our BEP 10 handshake: ut_metadata when we have the
// info dictionary to give, our listening port, our request queue size
// and client name.
func (u *uploader) extHandshake() []byte {
	h := peerwire.ExtHandshake{V: "Flotilla", Reqq: u.maxQueue}
	h.P = u.port
	if u.infoBytes != nil {
		h.M = map[string]int{peerwire.ExtMetadataName: ourMetadataID}
		h.MetadataSize = len(u.infoBytes)
	}
	if u.pex {
		if h.M == nil {
			h.M = map[string]int{}
		}
		h.M[peerwire.ExtPexName] = ourPexID
	}
	return h.Encode()
}

// maxOutstanding is how many requests a peer may have unanswered (queued
// uploads and rejects not yet written), or send while choked: twice the request queue we advertise, plus slack for
// requests that cross a choke on the wire. A peer past it floods us.
func (u *uploader) maxOutstanding() int { return 2*u.maxQueue + 64 }

// serve queues an upload, or rejects it; a peer flooding requests gets
// errRequestFlood.
func (u *uploader) serve(t *peerTable, p *peer, m *peerwire.Message) error {
	if n := p.h.out.pendingAnswers(); n >= u.maxOutstanding() {
		return fmt.Errorf("%w: %d answers not yet read by the peer", errRequestFlood, n)
	}
	i := int(m.Index)
	ok := u.advertised.Has(i) && !p.amChoking &&
		p.h.out.queuedUploads() < u.maxQueue
	if ok {
		t.send(p, peerwire.Message{ID: peerwire.Piece, Index: m.Index, Begin: m.Begin, Length: m.Length})
		return nil
	}
	if p.amChoking {
		// Requests that cross our choke on the wire are few; more are a
		// flood (a reading peer that is over our queue while unchoked
		// only gets rejects, which cost nothing that stays).
		if p.refused++; p.refused > u.maxOutstanding() {
			return fmt.Errorf("%w: %d requests while choked", errRequestFlood, p.refused)
		}
	}
	if p.fast {
		t.send(p, peerwire.Message{ID: peerwire.Reject, Index: m.Index, Begin: m.Begin, Length: m.Length})
	}
	return nil
}

func (u *uploader) setChoking(t *peerTable, p *peer, choke bool) {
	if p.amChoking == choke {
		return
	}
	p.amChoking = choke
	p.refused = 0
	if !choke {
		t.send(p, peerwire.Message{ID: peerwire.Unchoke})
		return
	}
	dropped := p.h.out.dropUploads(func(peerwire.Message) bool { return true })
	msgs := []peerwire.Message{{ID: peerwire.Choke}}
	if p.fast {
		for _, d := range dropped {
			msgs = append(msgs, peerwire.Message{ID: peerwire.Reject, Index: d.Index, Begin: d.Begin, Length: d.Length})
		}
	}
	t.send(p, msgs...)
}

// maybeUnchoke gives a newly interested peer a free upload slot at once
// instead of making it wait for the next choke round.
func (u *uploader) maybeUnchoke(t *peerTable, p *peer) {
	if !p.amChoking || u.nAdvertised == 0 {
		return
	}
	unchoked := 0
	for q := range t.all() {
		if !q.amChoking {
			unchoked++
		}
	}
	if unchoked < u.slots {
		u.setChoking(t, p, false)
	}
}

// tick runs a choke round every chokeInterval.
func (u *uploader) tick(now time.Time, t *peerTable) {
	if now.Sub(u.lastChoke) >= u.chokeInterval {
		u.lastChoke = now
		u.chokeRound(now, t)
	}
}

func (u *uploader) chokeRound(now time.Time, t *peerTable) {
	seeding := u.seeding()
	var cands []chokeCandidate
	for p := range t.all() {
		rate := p.down.Rate()
		if seeding {
			rate = p.up.Rate()
		}
		cands = append(cands, chokeCandidate{Key: p.key, Interested: p.peerInterested, Rate: rate, Snubbed: p.snubbed})
	}
	unchoke := u.choker.Decide(now, seeding, cands, nil)
	set := make(map[peerKey]bool, len(unchoke))
	for _, k := range unchoke {
		set[k] = true
	}
	for p := range t.all() {
		u.setChoking(t, p, !set[p.key])
	}
}
