package dht

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"net/netip"
	"time"
)

// tokenLen is the length of the tokens we hand out.
const tokenLen = 8

// tokens issues and checks get_peers tokens (BEP 5): a token is a MAC of
// the querier's IP under a secret that rotates every rotate; a token from
// the current or the previous secret is accepted, so a token stays valid
// between rotate and 2×rotate. A passive value owned by the Node's loop.
type tokens struct {
	rotate    time.Duration
	cur, prev [16]byte
	rotated   time.Time
}

func newTokens(rotate time.Duration, now time.Time) *tokens {
	t := &tokens{rotate: rotate, rotated: now}
	_, _ = rand.Read(t.cur[:])
	_, _ = rand.Read(t.prev[:])
	return t
}

// tick rotates the secret when it is due.
func (t *tokens) tick(now time.Time) {
	el := now.Sub(t.rotated)
	if el < t.rotate {
		return
	}
	t.prev = t.cur
	_, _ = rand.Read(t.cur[:])
	t.rotated = now
	if el >= 2*t.rotate { // asleep for two periods: the old secrets are stale
		t.prev = t.cur
	}
}

func mac(secret [16]byte, ip netip.Addr) []byte {
	h := hmac.New(sha256.New, secret[:])
	b := ip.Unmap().As16()
	h.Write(b[:])
	return h.Sum(nil)[:tokenLen]
}

// issue returns the token for ip.
func (t *tokens) issue(ip netip.Addr) []byte { return mac(t.cur, ip) }

// valid reports whether tok was issued to ip under the current or the
// previous secret.
func (t *tokens) valid(tok []byte, ip netip.Addr) bool {
	return len(tok) == tokenLen && (hmac.Equal(tok, mac(t.cur, ip)) || hmac.Equal(tok, mac(t.prev, ip)))
}
