package dht

import (
	"net/netip"
	"time"
)

// rateLimiter bounds the queries one IP address may make: a token bucket
// per address (rate per second, burst), for at most maxIPs addresses at a
// time. When the map is full, idle addresses (whose buckets have refilled)
// are forgotten; if none is, a new address is refused until one is. A
// passive value owned by the Node's reader goroutine.
type rateLimiter struct {
	rate, burst float64
	maxIPs      int
	ips         map[netip.Addr]*tokenBucket
	swept       time.Time
}

type tokenBucket struct {
	tokens float64
	at     time.Time
}

func newRateLimiter(rate float64, burst, maxIPs int) *rateLimiter {
	return &rateLimiter{rate: rate, burst: float64(burst), maxIPs: maxIPs, ips: make(map[netip.Addr]*tokenBucket)}
}

// allow takes a token for ip, reporting false when it has none left.
func (r *rateLimiter) allow(ip netip.Addr, now time.Time) bool {
	if r.rate <= 0 {
		return true
	}
	ip = ip.Unmap()
	b, ok := r.ips[ip]
	if !ok {
		if len(r.ips) >= r.maxIPs && !r.sweep(now) {
			return false
		}
		b = &tokenBucket{tokens: r.burst, at: now}
		r.ips[ip] = b
	}
	b.tokens = min(r.burst, b.tokens+now.Sub(b.at).Seconds()*r.rate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sweep forgets the addresses whose buckets are full again, reporting
// whether it made room.
func (r *rateLimiter) sweep(now time.Time) bool {
	if now.Sub(r.swept) < time.Second {
		return false // at most one sweep a second under a flood of new addresses
	}
	r.swept = now
	for ip, b := range r.ips {
		if b.tokens+now.Sub(b.at).Seconds()*r.rate >= r.burst {
			delete(r.ips, ip)
		}
	}
	return len(r.ips) < r.maxIPs
}
