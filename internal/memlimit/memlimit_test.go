package memlimit

import (
	"runtime/debug"
	"testing"
)

func TestReserveRaisesTheLimitUntilReleased(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)
	defer func() { mu.Lock(); enabled, base, reserved = false, 0, 0; mu.Unlock() }()

	early := Reserve(5 << 20) // before Set: counted, the runtime untouched
	if got := debug.SetMemoryLimit(-1); got != old {
		t.Fatalf("runtime limit %d before Set, want it untouched (%d)", got, old)
	}
	if Limit() != 0 {
		t.Fatalf("Limit before Set = %d, want 0", Limit())
	}
	Set(48 << 20)
	check := func(want int64) {
		t.Helper()
		if got := debug.SetMemoryLimit(-1); got != want || Limit() != want {
			t.Fatalf("runtime limit %d, Limit %d; want %d", got, Limit(), want)
		}
	}
	check(53 << 20)
	r := Reserve(10 << 20)
	check(63 << 20)
	r()
	r() // a second release changes nothing
	check(53 << 20)
	early()
	check(48 << 20)
	Reserve(0)()
	Reserve(-1)()
	check(48 << 20)
}
