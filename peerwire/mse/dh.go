package mse

import (
	"crypto/rc4"
	"crypto/sha1"
	"errors"
	"io"
	"math/big"
)

// keyLen is the length of the public keys and of the shared secret S.
const keyLen = 96

// prime is the 768-bit MSE prime P; the generator is 2.
var prime, _ = new(big.Int).SetString(
	"FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563", 16)

var (
	two        = big.NewInt(2)
	primeLess1 = new(big.Int).Sub(prime, big.NewInt(1))
)

// errBadKey is a public key outside 2..P-2, which no honest peer sends
// (it would make the shared secret predictable).
var errBadKey = errors.New("mse: peer's public key is out of range")

// keyPair is one side's Diffie-Hellman key: a 160-bit private x and the
// public 2^x mod P as 96 big-endian bytes.
type keyPair struct {
	x   *big.Int
	pub [keyLen]byte
}

func newKeyPair(rnd io.Reader) (keyPair, error) {
	var xb [20]byte
	if _, err := io.ReadFull(rnd, xb[:]); err != nil {
		return keyPair{}, err
	}
	k := keyPair{x: new(big.Int).SetBytes(xb[:])}
	new(big.Int).Exp(two, k.x, prime).FillBytes(k.pub[:])
	return k, nil
}

// secret is S = peer^x mod P as 96 big-endian bytes.
func (k keyPair) secret(peer []byte) ([keyLen]byte, error) {
	var s [keyLen]byte
	y := new(big.Int).SetBytes(peer)
	if y.Cmp(two) < 0 || y.Cmp(primeLess1) >= 0 {
		return s, errBadKey
	}
	new(big.Int).Exp(y, k.x, prime).FillBytes(s[:])
	return s, nil
}

// hash is SHA-1 of the concatenation of parts.
func hash(parts ...[]byte) [20]byte {
	h := sha1.New()
	for _, p := range parts {
		h.Write(p)
	}
	var out [20]byte
	h.Sum(out[:0])
	return out
}

// Req2 is HASH('req2', SKEY): what a responder's SKEY lookup is keyed by.
func Req2(skey [20]byte) [20]byte { return hash([]byte("req2"), skey[:]) }

// newCipher is the RC4 stream keyed with HASH(name, S, SKEY), its first
// 1024 bytes discarded.
func newCipher(name string, s [keyLen]byte, skey [20]byte) *rc4.Cipher {
	k := hash([]byte(name), s[:], skey[:])
	c, _ := rc4.NewCipher(k[:]) // a 20-byte key is always valid
	var discard [1024]byte
	c.XORKeyStream(discard[:], discard[:])
	return c
}
