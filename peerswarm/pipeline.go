package peerswarm

import "time"

// pipelineDepth is how many block requests to keep outstanding at a peer
// delivering rate bytes/s so that the pipe stays full for target latency:
// clamp(rate*target/blockSize, min, max). A peer with no measured rate yet
// gets start (slow start ends at the first rate sample).
func pipelineDepth(rate float64, target time.Duration, blockSize, start, lo, hi int) int {
	if rate <= 0 {
		return max(lo, min(start, hi))
	}
	d := int(rate * target.Seconds() / float64(blockSize))
	return max(lo, min(d, hi))
}
