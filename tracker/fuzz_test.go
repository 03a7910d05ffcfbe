package tracker

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"flotilla/tracker/internal/wire"
)

// The property of every fuzz target: the decoder never panics, and whatever
// it accepts, the matching encoder (the one the fake trackers use) turns
// back into bytes that decode to the same value.

func FuzzHTTPAnnounceReply(f *testing.F) {
	f.Add([]byte("d8:intervali1800e5:peers6:\x7f\x00\x00\x01\x1a\xe1e"))
	f.Add([]byte("d14:failure reason11:not allowede"))
	f.Add([]byte("d8:completei3e10:incompletei5e8:intervali60e12:min intervali30e10:tracker id3:abc15:warning message4:slow5:peersld2:ip9:127.0.0.14:porti6881e7:peer id20:aaaaaaaaaaaaaaaaaaaaee6:peers618:\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe1e"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := wire.DecodeHTTPAnnounce(data)
		var te *wire.TrackerError
		if errors.As(err, &te) {
			_, err2 := wire.DecodeHTTPAnnounce(wire.EncodeHTTPFailure(te.Reason))
			var te2 *wire.TrackerError
			if !errors.As(err2, &te2) || te2.Reason != te.Reason {
				t.Fatalf("failure reason %q did not round-trip: %v", te.Reason, err2)
			}
			return
		}
		if err != nil {
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("error is not ErrMalformed: %v", err)
			}
			return
		}
		enc := wire.EncodeHTTPAnnounce(r)
		r2, err := wire.DecodeHTTPAnnounce(enc)
		if err != nil {
			t.Fatalf("re-encoded reply %q does not decode: %v", enc, err)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip differs:\n%+v\n%+v", r, r2)
		}
	})
}

func FuzzHTTPScrapeReply(f *testing.F) {
	f.Add([]byte("d5:filesd20:aaaaaaaaaaaaaaaaaaaad8:completei1e10:downloadedi2e10:incompletei3eeee"))
	f.Add([]byte("d14:failure reason3:nope"))
	f.Add([]byte("de"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := wire.DecodeHTTPScrape(data)
		if err != nil {
			if !errors.Is(err, wire.ErrMalformed) && !errors.Is(err, wire.ErrTrackerFailure) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		m2, err := wire.DecodeHTTPScrape(wire.EncodeHTTPScrape(m))
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip differs: %v\n%+v\n%+v", err, m, m2)
		}
	})
}

func FuzzUDPReply(f *testing.F) {
	f.Add(wire.AppendConnectReply(nil, 7, 0x1122334455667788), false, uint8(0))
	f.Add(wire.AppendAnnounceReply(nil, 7, &wire.AnnounceResponse{Interval: 1800e9, Seeders: 2, Leechers: 3,
		Peers: []wire.Peer{{Addr: mustAddrPort("127.0.0.1:6881")}}}, false), false, uint8(0))
	f.Add(wire.AppendAnnounceReply(nil, 7, &wire.AnnounceResponse{Interval: 60e9,
		Peers: []wire.Peer{{Addr: mustAddrPort("[::1]:6881")}}}, true), true, uint8(0))
	f.Add(wire.AppendScrapeReply(nil, 9, []wire.ScrapeStats{{Seeders: 1, Completed: 2, Leechers: 3}}), false, uint8(1))
	f.Add(wire.AppendErrorReply(nil, 9, "unregistered torrent"), false, uint8(0))
	f.Add([]byte{0, 0, 0, 1}, false, uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, v6 bool, want uint8) {
		action, txid, ok := wire.ReplyHeader(data)
		if !ok {
			return
		}
		switch action {
		case wire.ActionConnect:
			id, err := wire.DecodeConnectReply(data)
			if err == nil && !bytes.Equal(wire.AppendConnectReply(nil, txid, id), data[:wire.ConnectSize]) {
				t.Fatalf("connect reply did not round-trip")
			}
		case wire.ActionAnnounce:
			r, err := wire.DecodeAnnounceReply(data, v6)
			if err != nil {
				return
			}
			r2, err := wire.DecodeAnnounceReply(wire.AppendAnnounceReply(nil, txid, r, v6), v6)
			if err != nil || !reflect.DeepEqual(r, r2) {
				t.Fatalf("announce reply did not round-trip: %v\n%+v\n%+v", err, r, r2)
			}
		case wire.ActionScrape:
			s, err := wire.DecodeScrapeReply(data, int(want))
			if err != nil {
				return
			}
			s2, err := wire.DecodeScrapeReply(wire.AppendScrapeReply(nil, txid, s), int(want))
			if err != nil || !reflect.DeepEqual(s, s2) {
				t.Fatalf("scrape reply did not round-trip: %v", err)
			}
		case wire.ActionError:
			err := wire.DecodeErrorReply(data)
			var te *wire.TrackerError
			if !errors.As(err, &te) || !bytes.Equal(wire.AppendErrorReply(nil, txid, te.Reason), data) {
				t.Fatalf("error reply did not round-trip: %v", err)
			}
		}
	})
}

func FuzzUDPRequest(f *testing.F) {
	req := &wire.AnnounceRequest{NumWant: -1, Port: 6881, Event: wire.EventStarted}
	f.Add(wire.AppendConnectRequest(nil, 1))
	f.Add(wire.AppendAnnounceRequest(nil, 5, 6, req, "/announce?passkey=x"))
	f.Add(wire.AppendScrapeRequest(nil, 5, 6, [][20]byte{{1}, {2}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		q, err := wire.ParseRequest(data)
		if err != nil {
			return
		}
		var enc []byte
		switch q.Action {
		case wire.ActionConnect:
			enc = wire.AppendConnectRequest(nil, q.TxID)
		case wire.ActionAnnounce:
			enc = wire.AppendAnnounceRequest(nil, q.ConnID, q.TxID, &q.Announce, q.URLData)
		case wire.ActionScrape:
			enc = wire.AppendScrapeRequest(nil, q.ConnID, q.TxID, q.Hashes)
		}
		q2, err := wire.ParseRequest(enc)
		if err != nil || !reflect.DeepEqual(q, q2) {
			t.Fatalf("request did not round-trip: %v\n%+v\n%+v", err, q, q2)
		}
	})
}
