package main

import "testing"

// The churn run's counts come from the lines swarmnode and the
// coordinator's -v log write; a change of wording must show here.
func TestChurnLogCounts(t *testing.T) {
	coordLog := `time=2026-12-06T21:00:00Z level=DEBUG msg="piece dropped: verified already" worker=node3 piece=12
time=2026-12-06T21:00:01Z level=WARN msg="worker gone; its lease returns to the pool" worker=node2 pieces=0 err="delegate: node left (stopped cleanly): node2 shipped its 41 pieces"
time=2026-12-06T21:00:02Z level=WARN msg="worker gone; its lease returns to the pool" worker=node4 pieces=2 err="delegate: node left (stopped cleanly): node4 left, but 2 of the 9 pieces it shipped did not arrive within 10s"
time=2026-12-06T21:00:03Z level=WARN msg="worker gone; its lease returns to the pool" worker=node1 pieces=17 err="delegate: session lost: node1 closed the connection"
`
	gone, dropped := churnLog(coordLog)
	if gone != 2 || dropped != 1 {
		t.Fatalf("churnLog: gone after leave %d, dropped %d; want 2 and 1", gone, dropped)
	}
	m := leftLineRE.FindStringSubmatch("swarmnode: left 1 of 1 jobs cleanly in 2.31s: 5 pieces shipped while leaving (17 in all), 0 verified but not shipped")
	if m == nil || m[1] != "1" || m[2] != "1" || m[3] != "5" || m[4] != "17" || m[5] != "0" {
		t.Fatalf("swarmnode's leave line not matched: %q", m)
	}
}
