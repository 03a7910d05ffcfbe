package tracker

import "time"

// Times the tracker keeps as integers (to keep per-peer and per-pipeline
// state small) are nanoseconds after monoBase, taken with t.Sub(monoBase).
// For a time read from time.Now that difference comes from the monotonic
// clock, so a step of the system clock (NTP, a suspended VM, an operator)
// moves neither retry times nor peer ages. Storing UnixNano instead kept
// only the wall clock: a step back delayed retries by the step, a step
// forward expired every peer at once (issue 8 item 8).
//
// Times without a monotonic reading (built by time.Unix, or after
// Round(0)) are measured on the wall clock, consistently with each other.
var monoBase = time.Now()

// monoNanos returns t as nanoseconds after monoBase.
func monoNanos(t time.Time) int64 { return int64(t.Sub(monoBase)) }

// monoTime is the inverse of monoNanos: a time with a monotonic reading
// (when monoBase has one) that compares correctly with time.Now.
func monoTime(n int64) time.Time { return monoBase.Add(time.Duration(n)) }
