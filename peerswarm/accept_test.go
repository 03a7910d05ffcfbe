package peerswarm

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"flotilla/internal/testenv"
	"flotilla/peerwire"
	"flotilla/swarm/swarmtest"
)

// closedByThem reports whether the other side closes c within 10 s
// (a read ends in EOF or a reset rather than our deadline).
func closedByThem(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 256)
	for {
		_, err := c.Read(buf)
		if err != nil {
			var ne net.Error
			return !(errors.As(err, &ne) && ne.Timeout())
		}
	}
}

func newAcceptTestSwarm(t *testing.T, id byte) (*testDownload, *swarmtest.Torrent) {
	t.Helper()
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	cfg := testConfig(tt, swarmtest.NewStorage(tt.Info, nil), id)
	cfg.Listener = listen(t, "127.0.0.1")
	cfg.HandshakeTimeout = time.Minute // the limits under test must act sooner
	return newTestDownload(t, cfg), tt
}

// One address holds at most 4 handshakes: a fifth connection is closed at
// once, while another address is still served. Before the fix 16 idle
// connections from anywhere held every handshake slot for the whole
// handshake timeout.
func TestHandshakePerIPCap(t *testing.T) {
	d, tt := newAcceptTestSwarm(t, 40)
	for range maxHandshakesPerIP {
		dialFrom(t, d, "127.0.3.1", []byte{19}) // a first byte, then nothing
	}
	if !closedByThem(dialFrom(t, d, "127.0.3.1", []byte{19})) {
		t.Fatal("a fifth handshake from one address was kept open")
	}
	rawPeer(t, d, tt, "127.0.3.2", "-TEST00-honestpeer01")
}

// An incoming connection that sends nothing is closed after the first-byte
// deadline, long before the handshake timeout.
func TestFirstByteDeadline(t *testing.T) {
	d, _ := newAcceptTestSwarm(t, 41)
	if !closedByThem(dialFrom(t, d, "127.0.3.3", nil)) {
		t.Fatal("a silent connection was kept open past the first-byte deadline")
	}
}

// One address has at most 8 incoming connections: the ninth is closed
// without a handshake.
func TestConnsPerIPCap(t *testing.T) {
	d, tt := newAcceptTestSwarm(t, 42)
	for i := range maxConnsPerIP {
		c, _ := rawPeer(t, d, tt, "127.0.3.4", fmt.Sprintf("-TEST00-peripcap%04d", i))
		c.Write(peerwire.AppendMessage(nil, peerwire.Message{ID: peerwire.HaveNone}))
	}
	testenv.WaitFor(t, 10*time.Second, "8 peers from one address", func() bool { return connectedPeers(t, d) == maxConnsPerIP })
	var pid [20]byte
	copy(pid[:], "-TEST00-peripcap9999")
	c := dialFrom(t, d, "127.0.3.4", peerwire.AppendHandshake(nil, peerwire.Handshake{Reserved: peerwire.DefaultReserved(), InfoHash: tt.InfoHash, PeerID: pid}))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := peerwire.ReadHandshake(c); err == nil {
		t.Fatal("a ninth connection from one address got a handshake")
	}
}

// Peers that connect, handshake and then sit silent cannot take every
// slot: incoming peers get at most three quarters of MaxPeers (so the
// swarm still dials), and an idle one gives its slot to a newcomer. Before
// the fix eight squatters held all eight slots: nothing was dialled and no
// honest peer got in.
func TestSlotSquatters(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 1<<20, 64<<10)
	seeder := newTestSeeder(t, tt, 43)

	st := swarmtest.NewStorage(tt.Info, nil)
	cfg := testConfig(tt, st, 44)
	cfg.Listener = listen(t, "127.0.0.1")
	cfg.MaxPeers = 8
	d := newTestDownload(t, cfg)
	for i := range cfg.MaxPeers {
		ip := fmt.Sprintf("127.0.4.%d", i+1)
		c := dialFrom(t, d, ip, nil)
		var pid [20]byte
		copy(pid[:], "-SQUAT0-"+ip)
		c.Write(peerwire.AppendHandshake(nil, peerwire.Handshake{Reserved: peerwire.DefaultReserved(), InfoHash: tt.InfoHash, PeerID: pid}))
	}
	testenv.WaitFor(t, 10*time.Second, "the squatters to take the incoming slots", func() bool { return connectedPeers(t, d) >= maxIncoming(cfg.MaxPeers) })
	testenv.WaitFor(t, 10*time.Second, "a squatter to be idle", func() bool {
		idle := 0
		onOwner(t, d.Local(), func() {
			for p := range d.Local().peers.all() {
				if time.Since(time.Unix(0, p.h.lastRead.Load())) >= evictIdle {
					idle++
				}
			}
		})
		return idle > 0
	})

	// A newcomer gets in, in place of an idle squatter.
	c, r := rawPeer(t, d, tt, "127.0.4.100", "-TEST00-newcomer0001")
	c.Write(peerwire.AppendMessage(nil, peerwire.Message{ID: peerwire.HaveNone}))
	if !stillOpen(c, r) {
		t.Fatal("the newcomer was refused while idle squatters held the slots")
	}
	// The swarm still dials: the download completes from the seeder.
	d.AddPeers([]netip.AddrPort{addrOf(t, seeder)})
	waitComplete(t, d, 30*time.Second)
	if !bytes.Equal(st.Bytes(), tt.Data) {
		t.Fatal("data differs")
	}
}
