package metadata

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"flotilla/metainfo"
	"flotilla/peerwire"
	"flotilla/peerwire/mse"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeSeed serves info over ut_metadata, advertising size (0: len(info)),
// and flipping a byte of every piece when lie is set.
type fakeSeed struct {
	info []byte
	size int
	lie  bool
	// first are sent before the extension handshake (as libtorrent sends
	// its bitfield); Interested is answered with Unchoke.
	first []peerwire.Message
	// encrypted: only MSE with RC4 is accepted (as a client requiring
	// encryption).
	encrypted bool
}

func newFakeSeed(t *testing.T, hash [20]byte, info []byte, size int, lie bool) netip.AddrPort {
	t.Helper()
	s := &fakeSeed{info: info, size: size, lie: lie}
	if s.size == 0 {
		s.size = len(info)
	}
	return s.listen(t, hash, false)
}

// listen serves s on a loopback port until the test ends, one connection
// at a time or, with concurrent, each on a goroutine of its own.
func (s *fakeSeed) listen(t *testing.T, hash [20]byte, concurrent bool) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			if concurrent {
				go s.serve(nc, hash)
			} else {
				s.serve(nc, hash)
			}
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

func (s *fakeSeed) serve(nc net.Conn, hash [20]byte) {
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if s.encrypted {
		// A plaintext handshake is refused at once, as libtorrent and
		// Transmission do when they require encryption.
		head := make([]byte, 20)
		if _, err := io.ReadFull(nc, head); err != nil || string(head[1:]) == peerwire.Pstr {
			return
		}
		skey := func(req2 [20]byte) ([20]byte, bool) { return hash, req2 == mse.Req2(hash) }
		mc, err := mse.Accept(&peerwire.PrefixConn{Conn: nc, Head: head}, skey, mse.RC4, time.Now().Add(10*time.Second))
		if err != nil {
			return
		}
		nc = mc
	}
	if _, err := peerwire.ReadHandshake(nc); err != nil {
		return
	}
	peerwire.WriteHandshake(nc, peerwire.Handshake{Reserved: peerwire.DefaultReserved(), InfoHash: hash})
	w := peerwire.NewWriter(nc)
	for _, m := range s.first {
		w.WriteMessage(m)
	}
	w.WriteExtHandshake(peerwire.ExtHandshake{M: map[string]int{"ut_metadata": 3}, MetadataSize: s.size})
	w.Flush()
	r := peerwire.NewReader(nc, peerwire.Limits{})
	var theirs uint8
	for {
		m, err := r.ReadMessage()
		if err != nil {
			return
		}
		if m.ID == peerwire.Interested {
			w.WriteSimple(peerwire.Unchoke)
			w.Flush()
		}
		if m.ID != peerwire.Extended {
			continue
		}
		if m.ExtID == 0 {
			h, _ := peerwire.ParseExtHandshake(m.ExtPayload)
			theirs = uint8(h.M["ut_metadata"])
			continue
		}
		req, err := peerwire.ParseMetadataMsg(m.ExtPayload)
		if err != nil || m.ExtID != 3 {
			return
		}
		lo := req.Piece * peerwire.MetadataPieceSize
		data := bytes.Clone(s.info[lo:min(lo+peerwire.MetadataPieceSize, len(s.info))])
		if s.lie {
			data[0] ^= 0xff
		}
		out := peerwire.MetadataMsg{Type: peerwire.MetadataData, Piece: req.Piece, TotalSize: s.size, Data: data}
		w.WriteExtended(theirs, out.AppendTo(nil))
		w.Flush()
	}
}

// testInfo is a valid info dictionary whose encoding spans several
// metadata pieces.
func testInfo(t *testing.T) ([]byte, [20]byte) {
	t.Helper()
	const pieces = 2500 // 50 KB of hashes: 4 metadata pieces
	raw, err := metainfo.Build("data.bin", []metainfo.File{{Length: pieces * 16384}}, 16384, nil,
		bytes.NewReader(make([]byte, pieces*16384)))
	if err != nil {
		t.Fatal(err)
	}
	tor, err := metainfo.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return tor.InfoBytes, sha1.Sum(tor.InfoBytes)
}

func testConfig(peers ...netip.AddrPort) Config {
	cfg := DefaultConfig()
	cfg.Peers = peers
	cfg.PeerTimeout = 5 * time.Second
	return cfg
}

func TestFetchFromSeveralPeers(t *testing.T) {
	info, hash := testInfo(t)
	var peers []netip.AddrPort
	for range 3 {
		peers = append(peers, newFakeSeed(t, hash, info, 0, false))
	}
	m := &metainfo.Magnet{InfoHash: hash, Trackers: []string{"http://a.example/announce", "udp://b.example:80"}}
	tor, err := Fetch(context.Background(), m, testConfig(peers...))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tor.InfoBytes, info) || tor.Announce != m.Trackers[0] || len(tor.AnnounceList) != 2 {
		t.Fatalf("got %+v", tor)
	}
	path, err := Save(tor, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	back, err := metainfo.Load(path)
	if err != nil || back.InfoHash != hash {
		t.Fatalf("saved torrent: %v", err)
	}
}

func TestLiarIsDroppedAndHonestPeerCompletes(t *testing.T) {
	info, hash := testInfo(t)
	liar := newFakeSeed(t, hash, info, 0, true)
	honest := newFakeSeed(t, hash, info, 0, false)
	tor, err := Fetch(context.Background(), &metainfo.Magnet{InfoHash: hash}, testConfig(liar, honest))
	if err != nil || !bytes.Equal(tor.InfoBytes, info) {
		t.Fatalf("Fetch = %v", err)
	}
	// A liar alone: the fetch fails saying so rather than accepting it.
	_, err = Fetch(context.Background(), &metainfo.Magnet{InfoHash: hash}, testConfig(liar))
	if !errors.Is(err, ErrNoMetadata) || !strings.Contains(err.Error(), "1 dropped") {
		t.Fatalf("Fetch from a liar = %v", err)
	}
}

func TestAbsurdMetadataSizeIsRefused(t *testing.T) {
	info, hash := testInfo(t)
	huge := newFakeSeed(t, hash, info, 1<<30, false)
	_, err := Fetch(context.Background(), &metainfo.Magnet{InfoHash: hash}, testConfig(huge))
	if !errors.Is(err, ErrNoMetadata) {
		t.Fatalf("Fetch = %v", err)
	}
	// With an honest peer beside it the fetch completes.
	honest := newFakeSeed(t, hash, info, 0, false)
	if _, err := Fetch(context.Background(), &metainfo.Magnet{InfoHash: hash}, testConfig(huge, honest)); err != nil {
		t.Fatal(err)
	}
}

// TestFetchThroughTrackerAndCancel: peers come from Announce; a fetch
// with nobody answering ends when its context does, leaving no goroutine.
func TestFetchThroughTrackerAndCancel(t *testing.T) {
	info, hash := testInfo(t)
	seed := newFakeSeed(t, hash, info, 0, false)
	cfg := testConfig()
	cfg.Announce = func(context.Context) []netip.AddrPort { return []netip.AddrPort{seed} }
	if tor, err := Fetch(context.Background(), &metainfo.Magnet{InfoHash: hash}, cfg); err != nil || !bytes.Equal(tor.InfoBytes, info) {
		t.Fatalf("Fetch = %v", err)
	}
	cfg.Announce = func(context.Context) []netip.AddrPort { return nil }
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := Fetch(ctx, &metainfo.Magnet{InfoHash: hash}, cfg); !errors.Is(err, ErrNoMetadata) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Fetch with no peer = %v", err)
	}
}

// TestFetchKeepHandsConnectionsOver: FetchKeep returns the peers'
// connections open, with what each peer sent during the fetch (its
// bitfield, a have, its extension handshake) first on the stream, and
// the connection still carries messages both ways.
func TestFetchKeepHandsConnectionsOver(t *testing.T) {
	info, hash := testInfo(t)
	first := []peerwire.Message{{ID: peerwire.BitfieldMsg, Bitfield: []byte{0xff, 0x80}}, {ID: peerwire.Have, Index: 7}}
	var peers []netip.AddrPort
	for range 2 {
		s := newFakeSeedWith(t, hash, info, first)
		peers = append(peers, s)
	}
	tor, hs, err := FetchKeep(context.Background(), &metainfo.Magnet{InfoHash: hash}, testConfig(peers...))
	if err != nil || !bytes.Equal(tor.InfoBytes, info) {
		t.Fatalf("FetchKeep = %v", err)
	}
	if len(hs) == 0 {
		t.Fatal("no connection handed over")
	}
	for _, h := range hs {
		defer h.Conn.Close()
		if !h.Outgoing || !h.Greeted || h.Theirs.InfoHash != hash || !h.Theirs.SupportsExtensions() {
			t.Fatalf("handover %+v", h)
		}
		h.Conn.SetDeadline(time.Now().Add(5 * time.Second))
		r := peerwire.NewReader(h.Conn, peerwire.Limits{MaxMessage: 1 << 20})
		var got []string
		for len(got) < 3 {
			m, err := r.ReadMessage()
			if err != nil {
				t.Fatalf("reading the handed-over connection: %v (got %v)", err, got)
			}
			if m.ID == peerwire.Extended && m.ExtID == ourMetadataID {
				continue // a late reply: the swarm's ut_metadata ID, ignored there
			}
			got = append(got, m.ID.String())
		}
		if want := []string{peerwire.BitfieldMsg.String(), peerwire.Have.String(), peerwire.Extended.String()}; strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("replayed %v, want %v", got, want)
		}
		w := peerwire.NewWriter(h.Conn)
		if err := w.WriteSimple(peerwire.Interested); err != nil || w.Flush() != nil {
			t.Fatalf("write on the handed-over connection: %v", err)
		}
		for {
			m, err := r.ReadMessage()
			if err != nil {
				t.Fatalf("no unchoke after interested: %v", err)
			}
			if m.ID == peerwire.Unchoke {
				break
			}
		}
	}
}

// newFakeSeedWith is newFakeSeed sending first before its extension
// handshake.
func newFakeSeedWith(t *testing.T, hash [20]byte, info []byte, first []peerwire.Message) netip.AddrPort {
	t.Helper()
	s := &fakeSeed{info: info, size: len(info), first: first}
	return s.listen(t, hash, false)
}

// TestFetchFromPeerRequiringEncryption: a peer that takes only MSE with
// RC4 gives the info under Require, and under Prefer after its plaintext
// handshake failed; the handed-over connection says it is encrypted.
// Off (plaintext only) cannot reach it.
func TestFetchFromPeerRequiringEncryption(t *testing.T) {
	info, hash := testInfo(t)
	seed := (&fakeSeed{info: info, size: len(info), encrypted: true}).listen(t, hash, true)
	for _, p := range []mse.Policy{mse.Require, mse.Prefer, mse.Off} {
		cfg := testConfig(seed)
		cfg.Encryption = p
		tor, hs, err := FetchKeep(context.Background(), &metainfo.Magnet{InfoHash: hash}, cfg)
		for _, h := range hs {
			h.Conn.Close()
		}
		if p == mse.Off {
			if err == nil {
				t.Fatal("a plaintext-only fetch got the info from a peer requiring encryption")
			}
			continue
		}
		if err != nil || !bytes.Equal(tor.InfoBytes, info) {
			t.Fatalf("%v: FetchKeep = %v", p, err)
		}
		if len(hs) != 1 || !hs[0].Encrypted {
			t.Fatalf("%v: handed over %+v", p, hs)
		}
	}
}
