package mse

import (
	"io"
	"testing"
	"time"
)

// BenchmarkMSEHandshake is one whole handshake (both sides, loopback TCP,
// random pads, RC4 selected): the cost an encrypted connection adds.
func BenchmarkMSEHandshake(b *testing.B) {
	for b.Loop() {
		a, c := tcpPair(b)
		deadline := time.Now().Add(10 * time.Second)
		errc := make(chan error, 1)
		go func() {
			_, err := Accept(c, oneKey, RC4, deadline)
			errc <- err
		}()
		if _, err := Initiate(a, testSKey, RC4, nil, deadline); err != nil {
			b.Fatal(err)
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		a.Close()
		c.Close()
	}
}

// BenchmarkMSEKeyExchange is one side's Diffie-Hellman work: a key pair
// and the shared secret.
func BenchmarkMSEKeyExchange(b *testing.B) {
	peer, _ := newKeyPair(cryptoRand{})
	for b.Loop() {
		kp, _ := newKeyPair(cryptoRand{})
		if _, err := kp.secret(peer.pub[:]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMSERC4Throughput streams through an RC4 Conn pair over loopback
// TCP (encrypt, send, receive, decrypt); BenchmarkMSEPlainThroughput is
// the same with plaintext selected, for comparison.
func BenchmarkMSERC4Throughput(b *testing.B)   { benchThroughput(b, RC4) }
func BenchmarkMSEPlainThroughput(b *testing.B) { benchThroughput(b, Plaintext) }

func benchThroughput(b *testing.B, m Method) {
	in := initiator{skey: testSKey, provide: m, padA: noPad, padC: noPad, rnd: cryptoRand{}}
	re := responder{skeys: oneKey, allow: m, padB: noPad, padD: noPad, rnd: cryptoRand{}}
	ca, cb, errA, errB := handshakePair(b, in, re)
	if errA != nil || errB != nil {
		b.Fatal(errA, errB)
	}
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	done := make(chan error, 1)
	go func() {
		_, err := io.CopyN(io.Discard, cb, int64(b.N)*chunk)
		done <- err
	}()
	b.SetBytes(chunk)
	b.ResetTimer()
	for range b.N {
		if _, err := ca.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
