package clustertest

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"flotilla/internal/lab"
)

// Pieces a node keeps across a coordinator restart (delegate/kept.go),
// followed through the logs of the three processes involved:
//
//   - the killed coordinator's "piece accepted worker=NODE" lines (what it
//     received from the node) and its completion record (what it stored);
//   - the node's job from the killed coordinator: "session lost; kept
//     pieces for the next session pieces=K" and "job ended shipped=B";
//   - the node's first job from the restarted coordinator: "adopting
//     pieces kept ... pieces=K", one "shipping a kept piece piece=P" per
//     kept piece that passed its re-hash, "dropped a damaged kept piece
//     piece=P" per one that did not, and "shipped kept pieces kept=K
//     good=G";
//   - the restarted coordinator's "piece accepted" and "piece dropped:
//     verified already" lines for those pieces.

// keptFigures is one node's account of a coordinator restart.
type keptFigures struct {
	node       string
	received1  []int // pieces the killed coordinator accepted from the node
	unrecorded []int // of them, not in its completion record at the kill
	shipped1   int64 // bytes the node shipped in its job from the killed coordinator
	kept       int   // pieces the node kept when that session was lost
	good       []int // kept pieces it shipped to the restarted coordinator
	dropped    []int // kept pieces that failed their re-hash on the node
	accepted   int   // of good, accepted by the restarted coordinator from this node
	had        int   // of good, recorded by the killed coordinator already
	// Of good, pieces the restarted coordinator took from another swarm
	// before the node came back (it cannot know what a node holds until
	// the node rejoins and ships), by swarm.
	elsewhere map[string]int
	back      time.Duration // from the restarted coordinator's start to its first delegation to the node
}

func mib(pieces int) float64 { return float64(pieces) * piece / (1 << 20) }

func (f keptFigures) String() string {
	n := 0
	for _, k := range f.elsewhere {
		n += k
	}
	return fmt.Sprintf("%s: the killed coordinator received %d pieces (%.2f MiB) from it, %d of them not yet recorded at the kill; "+
		"the node shipped %.2f MiB in that session and kept %d pieces (%.2f MiB) when it was lost; back %v after the restart, "+
		"it shipped %d kept pieces (%.2f MiB, %d dropped as damaged) to the restarted coordinator, which accepted %d, "+
		"had %d already (recorded before the kill) and had taken %d from other swarms meanwhile %v",
		f.node, len(f.received1), mib(len(f.received1)), len(f.unrecorded), float64(f.shipped1)/(1<<20),
		f.kept, mib(f.kept), f.back.Round(10*time.Millisecond), len(f.good), mib(len(f.good)), len(f.dropped),
		f.accepted, f.had, n, f.elsewhere)
}

// acceptedBy maps each piece a coordinator's -v log says it accepted to
// the worker it accepted it from (the first, if a piece appears twice).
func acceptedBy(p *lab.Proc) map[int]string {
	m := map[int]string{}
	for _, l := range linesMatching(p, `msg="piece accepted"`) {
		i, err := strconv.Atoi(logField(l, "piece"))
		if err != nil {
			continue
		}
		if _, dup := m[i]; !dup {
			m[i] = logField(l, "worker")
		}
	}
	return m
}

// jobLines returns the lines of a node's log about job (its job= field)
// whose message is msg.
func jobLines(p *lab.Proc, job, msg string) []string {
	var out []string
	for _, l := range linesMatching(p, `msg="`+msg+`"`) {
		if logField(l, "job") == job {
			out = append(out, l)
		}
	}
	return out
}

func intField(t *testing.T, line, key string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(logField(line, key), 10, 64)
	if err != nil {
		t.Fatalf("no %s= count in %q", key, line)
	}
	return v
}

// checkKept checks that node, alive across a kill -9 and restart of the
// coordinator, kept every piece the killed coordinator had not confirmed
// and shipped them all in its first job from the restarted one (G == K;
// a kept piece that fails its re-hash on the node is dropped, and is an
// error here: nothing in the test damages the node's disk), and that each
// reached the restarted coordinator, which took it from the node unless
// it had it already: recorded before the kill, or fetched from another
// swarm before the node came back (a restarted coordinator learns its
// nodes only when they rejoin it; that cost is logged, not failed). In
// particular every piece the killed
// coordinator received from the node but had not recorded must be among
// the kept ones: otherwise it was lost (issue 8: "14 MiB received but only
// 8 MiB shipped after a restart").
func checkKept(t *testing.T, name string, node, coord1, coord2 *lab.Proc, rec *lab.CompletionRecord) keptFigures {
	t.Helper()
	f := keptFigures{node: name}
	for p, w := range acceptedBy(coord1) {
		if w != name {
			continue
		}
		f.received1 = append(f.received1, p)
		if !rec.Has(p) {
			f.unrecorded = append(f.unrecorded, p)
		}
	}
	slices.Sort(f.received1)
	slices.Sort(f.unrecorded)

	var jobs []string
	for _, l := range linesMatching(node, `msg="job started"`) {
		jobs = append(jobs, logField(l, "job"))
	}
	if len(jobs) < 2 {
		t.Errorf("%s had %d jobs, want one from each coordinator", name, len(jobs))
		return f
	}
	j1, j2 := jobs[0], jobs[1]
	if l := linesMatching(node, "cannot keep pieces for the next session"); len(l) > 0 {
		t.Errorf("%s could not keep its pieces: %s", name, l[0])
	}
	if l := jobLines(node, j1, "session lost; kept pieces for the next session"); len(l) == 1 {
		f.kept = int(intField(t, l[0], "pieces"))
	}
	if l := jobLines(node, j1, "job ended"); len(l) == 1 {
		f.shipped1 = intField(t, l[0], "shipped")
	} else {
		t.Errorf("%s: job %s (the killed coordinator's) has %d \"job ended\" lines", name, j1, len(l))
	}
	adopted := 0
	if l := jobLines(node, j2, "adopting pieces kept from an earlier session"); len(l) == 1 {
		adopted = int(intField(t, l[0], "pieces"))
	}
	if adopted != f.kept {
		t.Errorf("%s kept %d pieces and its next job adopted %d", name, f.kept, adopted)
	}
	for _, l := range jobLines(node, j2, "shipping a kept piece") {
		f.good = append(f.good, int(intField(t, l, "piece")))
	}
	for _, l := range jobLines(node, j2, "dropped a damaged kept piece") {
		f.dropped = append(f.dropped, int(intField(t, l, "piece")))
	}
	if f.kept > 0 {
		l := jobLines(node, j2, "shipped kept pieces")
		switch {
		case len(l) != 1:
			t.Errorf("%s: its job from the restarted coordinator never finished shipping its %d kept pieces", name, f.kept)
		case intField(t, l[0], "kept") != int64(f.kept) || intField(t, l[0], "good") != int64(len(f.good)):
			t.Errorf("%s: %q, but it kept %d pieces and shipped %d", name, l[0], f.kept, len(f.good))
		}
	}
	if len(f.good)+len(f.dropped) != f.kept {
		t.Errorf("%s kept %d pieces; its next job shipped %d and dropped %d: %d unaccounted for",
			name, f.kept, len(f.good), len(f.dropped), f.kept-len(f.good)-len(f.dropped))
	}
	if len(f.dropped) > 0 {
		t.Errorf("%s dropped kept pieces %v as damaged (failed their re-hash): nothing in this test damages its disk, so the kept file was wrong", name, f.dropped)
	}
	var lost []int
	for _, p := range f.unrecorded {
		if !slices.Contains(f.good, p) && !slices.Contains(f.dropped, p) {
			lost = append(lost, p)
		}
	}
	if len(lost) > 0 {
		t.Errorf("%s: pieces %v reached the killed coordinator unrecorded and the node did not keep them: lost with the restart", name, lost)
	}
	// Every kept piece shipped reaches the restarted coordinator: it takes
	// it from the node, or drops it as verified already (recorded before
	// the kill, or taken from another swarm before the node came back).
	// A piece with neither line went missing between the two.
	acc2 := acceptedBy(coord2)
	late := map[int]bool{}
	for _, l := range linesMatching(coord2, `msg="piece dropped: verified already"`, "worker="+name+" ") {
		if i, err := strconv.Atoi(logField(l, "piece")); err == nil {
			late[i] = true
		}
	}
	f.elsewhere = map[string]int{}
	for _, p := range f.good {
		w, ok := acc2[p]
		switch {
		case ok && w == name:
			f.accepted++
		case !late[p]:
			t.Errorf("%s shipped kept piece %d to the restarted coordinator, which neither took it nor dropped it: lost on the way", name, p)
		case ok:
			f.elsewhere[w]++
		case rec.Has(p):
			f.had++
		default:
			t.Errorf("%s shipped kept piece %d; the killed coordinator had not recorded it, nobody else delivered it, and the restarted one dropped it", name, p)
		}
	}
	if l := linesMatching(coord2, "delegating to swarm node", "node="+name+" "); len(l) > 0 {
		if at, ok := logTime(l[0]); ok {
			f.back = at.Sub(coord2.Started)
		}
	}
	t.Log(f)
	return f
}

// droppedVerified counts a coordinator's "piece dropped: verified
// already" lines per worker: pieces delivered after it had verified them
// (from another worker, or from before a restart).
func droppedVerified(p *lab.Proc) map[string]int {
	m := map[string]int{}
	for _, l := range linesMatching(p, `msg="piece dropped: verified already"`) {
		m[logField(l, "worker")]++
	}
	return m
}

// endGameDups sums a coordinator's "end game: duplicating started pieces"
// per worker.
func endGameDups(t *testing.T, p *lab.Proc) map[string]int {
	t.Helper()
	m := map[string]int{}
	for _, l := range linesMatching(p, "end game: duplicating started pieces") {
		m[logField(l, "worker")] += int(intField(t, l, "pieces"))
	}
	return m
}
