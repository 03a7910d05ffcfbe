package rate

import (
	"testing"
	"time"
)

func TestRateMeter(t *testing.T) {
	var m Meter
	t0 := time.Unix(0, 0)
	m.Tick(t0)
	for i := 1; i <= 20; i++ {
		m.Add(1 << 20)
		m.Tick(t0.Add(time.Duration(i) * time.Second))
	}
	if r := m.Rate(); r < 0.99*(1<<20) || r > 1.01*(1<<20) {
		t.Fatalf("rate %.0f", r)
	}
	for i := 21; i <= 40; i++ {
		m.Tick(t0.Add(time.Duration(i) * time.Second))
	}
	if m.Rate() > 1<<10 {
		t.Fatalf("rate did not decay: %.0f", m.Rate())
	}
}
