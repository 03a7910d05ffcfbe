package peerswarm

import (
	"bytes"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"flotilla/internal/testenv"
	"flotilla/peerwire"
	"flotilla/swarm/swarmtest"
)

// heapInUse is the live heap after a collection.
func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// floodPeer dials d from ip with the given reserved bits and completes the
// handshake; the caller decides whether it ever reads.
func floodPeer(t *testing.T, d *testDownload, tt *swarmtest.Torrent, ip string, reserved [8]byte) net.Conn {
	t.Helper()
	c := handshakeFrom(t, d, tt, ip, "-FLOOD0-"+ip, reserved)
	c.SetReadDeadline(time.Time{})
	return c
}

// sendRequests writes n valid requests (cycling over the torrent's blocks)
// in large writes, without reading, until done or the connection fails.
func sendRequests(c net.Conn, tt *swarmtest.Torrent, n int) {
	np := tt.Info.NumPieces()
	per := int(tt.Info.PieceLength / peerwire.BlockSize)
	buf := make([]byte, 0, 64<<10)
	for i := 0; i < n; i++ {
		piece := (i / per) % (np - 1) // not the last piece: every block is full size
		begin := (i % per) * peerwire.BlockSize
		buf = peerwire.AppendMessage(buf, peerwire.Message{ID: peerwire.Request, Index: uint32(piece), Begin: uint32(begin), Length: peerwire.BlockSize})
		if len(buf) >= 60<<10 {
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write(buf); err != nil {
				return
			}
			buf = buf[:0]
		}
	}
	c.Write(buf)
}

func newFloodSeeder(t *testing.T, id byte) (*testDownload, *swarmtest.Torrent) {
	t.Helper()
	tt := swarmtest.NewTorrent(t, 4<<20, 256<<10)
	return newTestSeeder(t, tt, id), tt
}

// A peer that keeps sending requests and never reads what we answer —
// rejects while choked (fast extension), pieces and rejects while unchoked,
// or requests ignored without the fast extension — is dropped and banned
// before its answers pile up. Before the fix a million requests left about
// a million messages queued (+130 MiB of heap) and the peer connected.
func TestRequestFloodBanned(t *testing.T) {
	fast := peerwire.DefaultReserved()
	var plain [8]byte
	for _, tc := range []struct {
		name     string
		ip       string
		reserved [8]byte
		unchoke  bool
	}{
		{"RejectFlood", "127.0.2.1", fast, false},
		{"RequestFloodUnchoked", "127.0.2.2", fast, true},
		{"ChokedWithoutFast", "127.0.2.3", plain, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, tt := newFloodSeeder(t, 30)
			base := heapInUse()
			c := floodPeer(t, d, tt, tc.ip, tc.reserved)
			first := []peerwire.Message{}
			if tc.reserved == fast {
				first = append(first, peerwire.Message{ID: peerwire.HaveNone})
			}
			if tc.unchoke {
				first = append(first, peerwire.Message{ID: peerwire.Interested})
			}
			var b []byte
			for _, m := range first {
				b = peerwire.AppendMessage(b, m)
			}
			c.Write(b)
			if tc.unchoke {
				// Wait to be unchoked, then stop reading.
				r := peerwire.NewReader(c, peerwire.DefaultLimits(tt.Info.NumPieces(), tt.Info.PieceLength, tt.Info.Length))
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				for {
					m, err := r.ReadMessage()
					if err != nil {
						t.Fatalf("waiting for unchoke: %v", err)
					}
					if m.ID == peerwire.Unchoke {
						break
					}
				}
			}
			sendRequests(c, tt, 1_000_000)
			grown := heapInUse() - base
			t.Logf("heap growth after the flood: %.1f MiB", float64(grown)/(1<<20))
			testenv.WaitFor(t, 10*time.Second, "the flooding peer to be banned", func() bool { return d.Local().Banned(netip.MustParseAddr(tc.ip)) })
			if grown > 16<<20 {
				t.Errorf("heap grew by %.1f MiB during the flood, bound 16 MiB", float64(grown)/(1<<20))
			}
		})
	}
}

// A peer whose outbound queue overflows its bound (it stopped reading) is
// dropped and banned; before the fix the queue grew without limit.
func TestOutQueueOverflowBanned(t *testing.T) {
	d, tt := newFloodSeeder(t, 31)
	ip := "127.0.2.4"
	c := floodPeer(t, d, tt, ip, peerwire.DefaultReserved())
	c.Write(peerwire.AppendMessage(nil, peerwire.Message{ID: peerwire.HaveNone}))
	testenv.WaitFor(t, 10*time.Second, "the peer to connect", func() bool { return connectedPeers(t, d) == 1 })
	// 16 MiB of messages: more than the socket buffers take, so the queue
	// fills whatever pace the writer keeps.
	big := peerwire.Message{ID: peerwire.Extended, ExtID: 1, ExtPayload: make([]byte, 64<<10)}
	onOwner(t, d.Local(), func() {
		for p := range d.Local().peers.all() {
			for range 256 {
				p.h.out.push(big)
			}
		}
	})
	testenv.WaitFor(t, 10*time.Second, "the peer with a full queue to be banned", func() bool { return d.Local().Banned(netip.MustParseAddr(ip)) })
	onOwner(t, d.Local(), func() {
		if d.Local().peers.n != 0 {
			t.Errorf("%d peers still connected", d.Local().peers.n)
		}
	})
}

// Blocks nobody asked for: a few are tolerated (they cross our cancels on
// the wire), more get the sender banned, and their data is not used.
func TestUnrequestedBlocksBanned(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	st := swarmtest.NewStorage(tt.Info, nil)
	cfg := testConfig(tt, st, 32)
	cfg.Listener = listen(t, "127.0.0.1")
	d := newTestDownload(t, cfg)
	ip := "127.0.2.5"
	c := floodPeer(t, d, tt, ip, peerwire.DefaultReserved())
	// It has everything but keeps us choked: nothing is ever requested.
	var b []byte
	b = peerwire.AppendMessage(b, peerwire.Message{ID: peerwire.HaveAll})
	junk := bytes.Repeat([]byte{0x5a}, peerwire.BlockSize)
	for i := range 20 {
		b = peerwire.AppendMessage(b, peerwire.Message{ID: peerwire.Piece, Index: uint32(i % 8), Begin: uint32(i/8) * peerwire.BlockSize, Block: junk})
	}
	c.Write(b)
	testenv.WaitFor(t, 10*time.Second, "the peer sending unrequested blocks to be banned", func() bool { return d.Local().Banned(netip.MustParseAddr(ip)) })
}

// An extension message over 64 KiB is a protocol error (we use no
// extension that needs more), not 1 MiB of buffer per peer.
func TestExtensionMessageCap(t *testing.T) {
	d, tt := newFloodSeeder(t, 33)
	ip := "127.0.2.6"
	c := floodPeer(t, d, tt, ip, peerwire.DefaultReserved())
	b := peerwire.AppendMessage(nil, peerwire.Message{ID: peerwire.HaveNone})
	b = peerwire.AppendMessage(b, peerwire.Message{ID: peerwire.Extended, ExtID: 7, ExtPayload: make([]byte, 100<<10)})
	c.Write(b)
	testenv.WaitFor(t, 10*time.Second, "the peer with a 100 KiB extension message to be banned", func() bool { return d.Local().Banned(netip.MustParseAddr(ip)) })
}
