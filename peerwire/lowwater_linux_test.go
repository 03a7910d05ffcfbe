//go:build linux

package peerwire_test

import (
	"bytes"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"flotilla/internal/lowwater"
	"flotilla/internal/testenv"
	"flotilla/peerwire"
	"flotilla/peerwire/mse"
)

// lowWaterPair returns the two ends of a loopback TCP connection.
func lowWaterPair(t *testing.T) (net.Conn, net.Conn) {
	a, b := testenv.TCPPair(t)
	return a, b
}

var lowWaterSKey = [20]byte{9, 8, 7, 6, 5, 4, 3, 2, 1}

// lowWaterStream is one way of reading a peer's stream: raw, behind a
// PrefixConn holding its first bytes, or through MSE (the responder's
// Conn holds the initiator's initial payload).
type lowWaterStream struct {
	name string
	// setup returns the sender's writer and the receiver's conn; the
	// first message's bytes are first (a prefix or an initial payload).
	setup func(t *testing.T, first []byte) (send net.Conn, recv net.Conn)
}

var lowWaterStreams = []lowWaterStream{
	{"tcp", func(t *testing.T, first []byte) (net.Conn, net.Conn) {
		a, b := lowWaterPair(t)
		if _, err := a.Write(first); err != nil {
			t.Fatal(err)
		}
		return a, b
	}},
	{"prefix", func(t *testing.T, first []byte) (net.Conn, net.Conn) {
		a, b := lowWaterPair(t)
		return a, &peerwire.PrefixConn{Conn: b, Head: first}
	}},
	{"mse-rc4", func(t *testing.T, first []byte) (net.Conn, net.Conn) {
		a, b := lowWaterPair(t)
		deadline := time.Now().Add(10 * time.Second)
		type res struct {
			c   *mse.Conn
			err error
		}
		ch := make(chan res, 1)
		go func() {
			c, err := mse.Accept(b, func(req2 [20]byte) ([20]byte, bool) {
				return lowWaterSKey, req2 == mse.Req2(lowWaterSKey)
			}, mse.RC4, deadline)
			ch <- res{c, err}
		}()
		ca, err := mse.Initiate(a, lowWaterSKey, mse.RC4, first, deadline)
		if err != nil {
			t.Fatal(err)
		}
		r := <-ch
		if r.err != nil {
			t.Fatal(r.err)
		}
		return ca, r.c
	}},
}

// TestReaderLowWaterNeverWaitsForBytesNotComing: the sender writes each
// message in random pieces with pauses, then waits for the reader to
// acknowledge it before the next, so a mark above the bytes still owed on
// the socket (its own buffer, a prefix or a handshake's initial payload
// not subtracted) leaves the reader waiting until its deadline. Every mark
// given is also checked against the bytes the stream still owes.
func TestReaderLowWaterNeverWaitsForBytesNotComing(t *testing.T) {
	const numPieces, pieceLen = 64, 256 << 10
	lim := peerwire.DefaultLimits(numPieces, pieceLen, numPieces*pieceLen)
	rng := rand.New(rand.NewPCG(1, 2))
	var msgs [][]byte
	block := bytes.Repeat([]byte{0xab}, peerwire.BlockSize)
	for i := range 60 {
		var m peerwire.Message
		switch (i + 2) % 5 { // the first a have: it fits an MSE initial payload
		case 0, 1, 3:
			m = peerwire.Message{ID: peerwire.Piece, Index: uint32(i % numPieces), Begin: 0, Block: block[:peerwire.BlockSize-rng.IntN(3)*4096]}
		case 2:
			m = peerwire.Message{ID: peerwire.Have, Index: uint32(i % numPieces)}
		case 4:
			m = peerwire.Message{KeepAlive: true}
		}
		msgs = append(msgs, peerwire.AppendMessage(nil, m))
	}
	for _, s := range lowWaterStreams {
		t.Run(s.name, func(t *testing.T) {
			send, recv := s.setup(t, msgs[0])
			acks := make(chan struct{})
			sendErr := make(chan error, 1)
			go func() {
				rng := rand.New(rand.NewPCG(3, 4))
				defer close(sendErr)
				for _, m := range msgs[1:] {
					for len(m) > 0 {
						n := min(len(m), 1+rng.IntN(6000))
						if _, err := send.Write(m[:n]); err != nil {
							sendErr <- err
							return
						}
						m = m[n:]
						time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
					}
					select {
					case <-acks:
					case <-time.After(10 * time.Second):
						return
					}
				}
			}()
			r := peerwire.NewReaderSize(recv, lim, 64<<10)
			var marks, high int
			r.SetLowWater(func(n int) error {
				marks++
				if n > 1 {
					high++
				}
				return lowwater.Set(recv, n)
			})
			for i := range msgs {
				recv.SetReadDeadline(time.Now().Add(5 * time.Second))
				m, err := r.ReadMessage()
				if err != nil {
					t.Fatalf("message %d: %v (a low-water mark above the bytes owed?)", i, err)
				}
				if want := msgs[i]; !bytes.Equal(peerwire.AppendMessage(nil, m), want) {
					t.Fatalf("message %d decoded as %v", i, m)
				}
				if i > 0 {
					acks <- struct{}{}
				}
			}
			if err := <-sendErr; err != nil {
				t.Fatal(err)
			}
			if high == 0 {
				t.Fatalf("no mark above 1 in %d marks: the reader woke for every packet", marks)
			}
		})
	}
}
