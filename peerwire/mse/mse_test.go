package mse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"flotilla/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var testSKey = [20]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}

// oneKey is an SKeyFunc serving only testSKey.
func oneKey(req2 [20]byte) ([20]byte, bool) { return testSKey, req2 == Req2(testSKey) }

// tcpPair returns the two ends of a loopback TCP connection (a net.Pipe
// would deadlock: both sides write before they read).
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	a, b := testenv.TCPPair(t)
	return a, b
}

func fixedPad(n int) pads { return func(io.Reader) (int, error) { return n, nil } }

// handshakePair runs in over a and re over b and returns both Conns.
func handshakePair(t testing.TB, in initiator, re responder) (*Conn, *Conn, error, error) {
	a, b := tcpPair(t)
	deadline := time.Now().Add(10 * time.Second)
	type out struct {
		c   *Conn
		err error
	}
	ch := make(chan out, 1)
	go func() {
		c, err := handshake(b, deadline, re.run)
		if err != nil {
			b.Close() // as a caller would: the initiator must not wait for more
		}
		ch <- out{c, err}
	}()
	ca, errA := handshake(a, deadline, in.run)
	if errA != nil {
		a.Close() // as a caller would: the responder must not wait for more
	}
	o := <-ch
	return ca, o.c, errA, o.err
}

func TestHandshake(t *testing.T) {
	hs := bytes.Repeat([]byte{19}, 68)
	for _, provide := range []Method{RC4, Plaintext | RC4, Plaintext} {
		for _, allow := range []Method{RC4, Plaintext | RC4, Plaintext} {
			for _, ia := range [][]byte{nil, hs} {
				for _, pad := range []int{0, 512} {
					name := fmt.Sprintf("provide=%v/allow=%v/ia=%d/pad=%d", provide, allow, len(ia), pad)
					t.Run(name, func(t *testing.T) {
						testHandshake(t, provide, allow, ia, pad)
					})
				}
			}
		}
	}
}

func testHandshake(t *testing.T, provide, allow Method, ia []byte, pad int) {
	in := initiator{skey: testSKey, provide: provide, ia: ia, padA: fixedPad(pad), padC: fixedPad(pad), rnd: cryptoRand{}}
	re := responder{skeys: oneKey, allow: allow, padB: fixedPad(pad), padD: fixedPad(pad), rnd: cryptoRand{}}
	ca, cb, errA, errB := handshakePair(t, in, re)
	if provide&allow == 0 {
		if !errors.Is(errB, ErrNoMethod) || errA == nil {
			t.Fatalf("no common method: initiator %v, responder %v", errA, errB)
		}
		return
	}
	if errA != nil || errB != nil {
		t.Fatalf("initiator %v, responder %v", errA, errB)
	}
	want := Plaintext
	if provide&allow&Plaintext == 0 {
		want = RC4
	}
	if ca.Method() != want || cb.Method() != want || cb.InfoHash() != testSKey {
		t.Fatalf("methods %v %v, want %v; skey %x", ca.Method(), cb.Method(), want, cb.InfoHash())
	}
	// The responder reads the initial payload first, then the stream.
	msgA, msgB := bytes.Repeat([]byte("from A "), 20000), bytes.Repeat([]byte("from B "), 20000)
	errc := make(chan error, 2)
	go func() { _, err := ca.Write(msgA); errc <- err }()
	go func() { _, err := cb.Write(msgB); errc <- err }()
	gotB := make([]byte, len(ia)+len(msgA))
	if _, err := io.ReadFull(cb, gotB); err != nil {
		t.Fatal(err)
	}
	gotA := make([]byte, len(msgB))
	if _, err := io.ReadFull(ca, gotA); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(gotB, append(append([]byte{}, ia...), msgA...)) || !bytes.Equal(gotA, msgB) {
		t.Fatal("stream corrupted")
	}
}

// TestPublicAPI runs Initiate against Accept with random pads.
func TestPublicAPI(t *testing.T) {
	a, b := tcpPair(t)
	deadline := time.Now().Add(10 * time.Second)
	errc := make(chan error, 1)
	var cb *Conn
	go func() {
		var err error
		cb, err = Accept(b, oneKey, RC4|Plaintext, deadline)
		errc <- err
	}()
	ca, err := Initiate(a, testSKey, RC4, []byte("hello"), deadline)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(cb, got); err != nil || string(got) != "hello" {
		t.Fatalf("IA %q, %v", got, err)
	}
	if ca.Method() != RC4 {
		t.Fatal(ca.Method())
	}
}

func TestUnknownSKey(t *testing.T) {
	in := initiator{skey: [20]byte{9}, provide: RC4, padA: noPad, padC: noPad, rnd: cryptoRand{}}
	re := responder{skeys: oneKey, allow: RC4, padB: noPad, padD: noPad, rnd: cryptoRand{}}
	_, _, errA, errB := handshakePair(t, in, re)
	if !errors.Is(errB, ErrUnknownSKey) || errA == nil {
		t.Fatalf("initiator %v, responder %v", errA, errB)
	}
}

// countingConn counts the bytes read from it.
type countingConn struct {
	net.Conn
	n atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestGarbageCutAfterSyncWindow: a peer that sends a key and then
// endless garbage is cut once the synchronisation window has passed,
// having made the responder read no more than the key and the window.
func TestGarbageCutAfterSyncWindow(t *testing.T) {
	a, b := tcpPair(t)
	cb := &countingConn{Conn: b}
	go func() {
		kp, _ := newKeyPair(cryptoRand{})
		a.Write(kp.pub[:])
		junk := bytes.Repeat([]byte{0xAA}, 4096)
		for {
			if _, err := a.Write(junk); err != nil {
				return
			}
		}
	}()
	_, err := Accept(cb, oneKey, RC4, time.Now().Add(10*time.Second))
	if !errors.Is(err, ErrSync) {
		t.Fatalf("err = %v, want ErrSync", err)
	}
	if n := cb.n.Load(); n > keyLen+reqSyncWindow {
		t.Fatalf("read %d bytes, want at most %d", n, keyLen+reqSyncWindow)
	}
	a.Close()
	b.Close()
}

// TestInitiatorGarbage: a responder that answers a key and garbage is
// cut after the verification constant's window.
func TestInitiatorGarbage(t *testing.T) {
	a, b := tcpPair(t)
	ca := &countingConn{Conn: a}
	go func() {
		kp, _ := newKeyPair(cryptoRand{})
		b.Write(kp.pub[:])
		io.Copy(io.Discard, io.LimitReader(b, 1<<20)) // let the initiator write
	}()
	go func() {
		junk := bytes.Repeat([]byte{0x55}, 4096)
		for {
			if _, err := b.Write(junk); err != nil {
				return
			}
		}
	}()
	_, err := Initiate(ca, testSKey, RC4, nil, time.Now().Add(10*time.Second))
	if !errors.Is(err, ErrSync) {
		t.Fatalf("err = %v, want ErrSync", err)
	}
	if n := ca.n.Load(); n > keyLen+vcSyncWindow {
		t.Fatalf("read %d bytes, want at most %d", n, keyLen+vcSyncWindow)
	}
	a.Close()
	b.Close()
}

// TestStallerHitsDeadline: a peer that sends its key and stops is cut at
// the deadline, on both sides.
func TestStallerHitsDeadline(t *testing.T) {
	for _, side := range []string{"responder", "initiator"} {
		t.Run(side, func(t *testing.T) {
			a, b := tcpPair(t)
			kp, _ := newKeyPair(cryptoRand{})
			go b.Write(kp.pub[:]) // then nothing
			deadline := time.Now().Add(200 * time.Millisecond)
			var err error
			if side == "responder" {
				_, err = Accept(a, oneKey, RC4, deadline)
			} else {
				_, err = Initiate(a, testSKey, RC4, nil, deadline)
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("err = %v, want a timeout", err)
			}
		})
	}
}

// TestBadKey: a public key of 0, 1 or P-1 is refused.
func TestBadKey(t *testing.T) {
	kp, _ := newKeyPair(cryptoRand{})
	for _, y := range [][]byte{{0}, {1}, primeLess1.Bytes()} {
		if _, err := kp.secret(y); !errors.Is(err, errBadKey) {
			t.Fatalf("key %x: %v", y, err)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	for _, s := range []string{"prefer", "require", "off"} {
		p, err := ParsePolicy(s)
		if err != nil || p.String() != s {
			t.Fatalf("%s: %v %v", s, p, err)
		}
	}
	if _, err := ParsePolicy("on"); err == nil {
		t.Fatal("accepted on")
	}
}

// cryptoRand reads from a fast deterministic source (not for keys in
// production: tests only).
type cryptoRand struct{}

var testRand = rand.NewChaCha8([32]byte{7})

func (cryptoRand) Read(p []byte) (int, error) {
	randMu <- struct{}{}
	defer func() { <-randMu }()
	return testRand.Read(p)
}

var randMu = make(chan struct{}, 1)
