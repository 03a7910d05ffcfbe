package dht

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"math/bits"
)

// ID is a 160-bit node id or info-hash; distance is their XOR (BEP 5).
type ID [20]byte

// RandomID returns a random id.
func RandomID() ID {
	var id ID
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails
	return id
}

func (id ID) String() string { return hex.EncodeToString(id[:]) }

// xor is the distance between a and b.
func xor(a, b ID) ID {
	var d ID
	for i := range d {
		d[i] = a[i] ^ b[i]
	}
	return d
}

// closer reports whether a is closer to target than b.
func closer(target, a, b ID) bool {
	da, db := xor(target, a), xor(target, b)
	return bytes.Compare(da[:], db[:]) < 0
}

// commonPrefix is the number of leading bits a and b share (160 when equal).
func commonPrefix(a, b ID) int {
	for i := range a {
		if x := a[i] ^ b[i]; x != 0 {
			return i*8 + bits.LeadingZeros8(x)
		}
	}
	return 160
}

// randomInBucket returns a random id sharing exactly prefix leading bits
// with self: a target that falls into bucket prefix of self's table.
func randomInBucket(self ID, prefix int) ID {
	id := RandomID()
	for i := 0; i < prefix; i++ {
		setBit(&id, i, bit(self, i))
	}
	if prefix < 160 {
		setBit(&id, prefix, !bit(self, prefix))
	}
	return id
}

func bit(id ID, i int) bool { return id[i/8]&(0x80>>(i%8)) != 0 }

func setBit(id *ID, i int, v bool) {
	if v {
		id[i/8] |= 0x80 >> (i % 8)
	} else {
		id[i/8] &^= 0x80 >> (i % 8)
	}
}
