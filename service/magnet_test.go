package service

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"flotilla/internal/testenv"
	"flotilla/metainfo"
	"flotilla/peerwire"
)

// metaSeed is a peer that serves a torrent's info over ut_metadata
// (BEP 9) and then keeps the connection open, reading, until the other
// side closes it: it counts the connections it accepted and those that
// ended.
type metaSeed struct {
	addr          netip.AddrPort
	mu            sync.Mutex
	accepted, end int
}

func newMetaSeed(t *testing.T, tor *metainfo.Torrent) *metaSeed {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &metaSeed{addr: netip.MustParseAddrPort(ln.Addr().String())}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.accepted++
			s.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.serve(nc, tor)
				s.mu.Lock()
				s.end++
				s.mu.Unlock()
			}()
		}
	}()
	return s
}

func (s *metaSeed) counts() (accepted, ended int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted, s.end
}

func (s *metaSeed) serve(nc net.Conn, tor *metainfo.Torrent) {
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(time.Minute)) // the test's bound, not the protocol's
	if _, err := peerwire.ReadHandshake(nc); err != nil {
		return
	}
	peerwire.WriteHandshake(nc, peerwire.Handshake{Reserved: peerwire.DefaultReserved(), InfoHash: tor.InfoHash})
	w := peerwire.NewWriter(nc)
	w.WriteExtHandshake(peerwire.ExtHandshake{M: map[string]int{"ut_metadata": 3}, MetadataSize: len(tor.InfoBytes)})
	w.Flush()
	r := peerwire.NewReader(nc, peerwire.Limits{})
	var theirs uint8
	for {
		m, err := r.ReadMessage()
		if err != nil {
			return // closed by the other side
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
		if err != nil || m.ExtID != 3 || req.Type != peerwire.MetadataRequest {
			continue
		}
		lo := req.Piece * peerwire.MetadataPieceSize
		data := bytes.Clone(tor.InfoBytes[lo:min(lo+peerwire.MetadataPieceSize, len(tor.InfoBytes))])
		out := peerwire.MetadataMsg{Type: peerwire.MetadataData, Piece: req.Piece, TotalSize: len(tor.InfoBytes), Data: data}
		w.WriteExtended(theirs, out.AppendTo(nil))
		w.Flush()
	}
}

func magnetTorrent(t *testing.T, name string) *metainfo.Torrent {
	t.Helper()
	tor, err := metainfo.Parse(testTorrent(t, name, 40<<10))
	if err != nil {
		t.Fatal(err)
	}
	return tor
}

// TestMagnetJobStartsOnFetchConnections: a magnet added through the
// service starts its job on the connection its metadata fetch opened
// (jobSpec.handover, coordinator.JobConfig.Handover): the seeder sees
// one connection from us, still open while the job runs, closed when
// the job closes.
func TestMagnetJobStartsOnFetchConnections(t *testing.T) {
	tor := magnetTorrent(t, "kept.bin")
	seed := newMetaSeed(t, tor)
	eng := newFakeEngine()
	s := newTestService(t, "", eng, func(c *Config) { c.Peers = []netip.AddrPort{seed.addr} })
	m := metainfo.Magnet{InfoHash: tor.InfoHash}
	in, err := s.Add([]byte(m.String()), AddOptions{})
	if err != nil || in.State != StateFetchingMetadata {
		t.Fatalf("add: %+v %v", in, err)
	}
	testenv.WaitFor(t, 20*time.Second, "the magnet's job started", func() bool { return eng.run("kept.bin") != nil })
	r := eng.run("kept.bin")
	if len(r.spec.handover) != 1 || r.spec.handover[0].Addr != seed.addr || r.spec.handover[0].Theirs.InfoHash != tor.InfoHash {
		t.Fatalf("the job started with handover %+v, want the one connection to %v", r.spec.handover, seed.addr)
	}
	if acc, ended := seed.counts(); acc != 1 || ended != 0 {
		t.Fatalf("the seeder accepted %d connections, %d ended; want 1 kept open", acc, ended)
	}
	s.Close()
	testenv.WaitFor(t, 10*time.Second, "the kept connection closed with the job", func() bool {
		_, ended := seed.counts()
		return ended == 1
	})
}

// TestMagnetQueuedClosesFetchConnections: a magnet whose job cannot
// start at once (--max-active taken) closes its fetch's connections
// instead of holding them while it waits; it dials afresh when it
// starts.
func TestMagnetQueuedClosesFetchConnections(t *testing.T) {
	tor := magnetTorrent(t, "waits.bin")
	seed := newMetaSeed(t, tor)
	eng := newFakeEngine()
	s := newTestService(t, "", eng, func(c *Config) {
		c.Peers = []netip.AddrPort{seed.addr}
		c.MaxActive = 1
	})
	if _, err := s.Add(testTorrent(t, "first.bin", 40<<10), AddOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the first job started", func() bool { return eng.run("first.bin") != nil })
	m := metainfo.Magnet{InfoHash: tor.InfoHash}
	in, err := s.Add([]byte(m.String()), AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, s, in.ID, StateQueued)
	testenv.WaitFor(t, 10*time.Second, "the queued job's fetch connection closed", func() bool {
		acc, ended := seed.counts()
		return acc == 1 && ended == 1
	})
	if eng.run("waits.bin") != nil {
		t.Fatal("the queued job started")
	}
}

// TestMagnetPeersStayWithTheJob: a magnet whose only source is its x.pe
// peer (no tracker, no --peer, DHT off) becomes a job that downloads from
// that peer, and keeps it across a restart (the record's peers), instead
// of failing with "nobody to download from" once its info has arrived.
func TestMagnetPeersStayWithTheJob(t *testing.T) {
	tor := magnetTorrent(t, "xpe.bin")
	seed := newMetaSeed(t, tor)
	dir := t.TempDir()
	eng := newFakeEngine()
	s := newTestService(t, dir, eng)
	m := metainfo.Magnet{InfoHash: tor.InfoHash, Peers: []string{seed.addr.String()}}
	in, err := s.Add([]byte(m.String()), AddOptions{})
	if err != nil || in.State != StateFetchingMetadata {
		t.Fatalf("add: %+v %v", in, err)
	}
	testenv.WaitFor(t, 20*time.Second, "the magnet's job started", func() bool { return eng.run("xpe.bin") != nil })
	if p := eng.run("xpe.bin").spec.peers; !slices.Contains(p, seed.addr) {
		t.Fatalf("the job started with peers %v, want the magnet's x.pe %v", p, seed.addr)
	}
	s.Close()

	eng2 := newFakeEngine()
	newTestService(t, dir, eng2)
	testenv.WaitFor(t, 20*time.Second, "the job started again after the restart", func() bool { return eng2.run("xpe.bin") != nil })
	if p := eng2.run("xpe.bin").spec.peers; !slices.Contains(p, seed.addr) {
		t.Fatalf("after the restart the job started with peers %v, want the magnet's x.pe %v", p, seed.addr)
	}
}
