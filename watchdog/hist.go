package watchdog

import (
	"math/bits"
	"time"
)

// histogram is a fixed-size log-linear latency histogram (HDR style): values
// below 16 ns get one bucket each; above, every power of two is split into 16
// equal sub-buckets, so a bucket is at most 1/16 of its lower bound wide and
// the reported midpoint is within ~3.2% of any value in it. Values of 2^45 ns
// (~9.8 h) and more share the last bucket (Max is kept exactly). Memory is
// constant: histBuckets counters.
type histogram struct {
	counts [histBuckets]uint64
	n      uint64
	min    int64
	max    int64
}

const (
	histSubBits  = 4
	histSub      = 1 << histSubBits
	histMaxExp   = 40 // largest shift: values < 2^(histMaxExp+histSubBits+1)
	histBuckets  = (histMaxExp + 2) << histSubBits
	histMaxValue = int64(1)<<(histMaxExp+histSubBits+1) - 1
)

func histBucket(v int64) int {
	if v < histSub {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	if v > histMaxValue {
		return histBuckets - 1
	}
	u := uint64(v)
	e := bits.Len64(u) - histSubBits - 1
	return (e+1)<<histSubBits + int((u>>uint(e))&(histSub-1))
}

// histBounds returns the lowest value of bucket i and the bucket's width.
func histBounds(i int) (low, width int64) {
	if i < histSub {
		return int64(i), 1
	}
	e := i>>histSubBits - 1
	m := int64(i & (histSub - 1))
	return (histSub + m) << uint(e), int64(1) << uint(e)
}

func (h *histogram) record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.counts[histBucket(v)]++
}

// quantile returns the value at quantile q (0 < q <= 1): the midpoint of the
// bucket holding the ceil(q*n)-th smallest sample, clamped to [min, max].
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.999999999)
	if rank < 1 {
		rank = 1
	}
	if rank > h.n {
		rank = h.n
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen < rank {
			continue
		}
		low, width := histBounds(i)
		v := low + width/2
		if v < h.min {
			v = h.min
		}
		if v > h.max {
			v = h.max
		}
		return time.Duration(v)
	}
	return time.Duration(h.max)
}
