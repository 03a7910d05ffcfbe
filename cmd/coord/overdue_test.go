package main

import (
	"bytes"
	"io"
	"testing"
	"time"

	"flotilla/coordinator"
	"flotilla/swarm"
	"flotilla/tracker"
)

// TestSayOverdue: each kind of Overdue event reaches stderr as one exact
// line naming the command, what is late, by how much, and what Flotilla
// does about it.
func TestSayOverdue(t *testing.T) {
	const url = "udp://tracker.example:6969/announce"
	for _, c := range []struct {
		ev   coordinator.Overdue
		want string
	}{
		{coordinator.Overdue{Kind: tracker.KindAnnounce, Tracker: url, Waited: 61200 * time.Millisecond, Late: 1200 * time.Millisecond},
			"coord download: overdue: tracker " + url + " has not answered its announce for 1m1s, 1.2s past its deadline; marked slow, still retrying\n"},
		{coordinator.Overdue{Kind: tracker.KindConnect, Tracker: url, Waited: 60 * time.Second, Late: 30 * time.Millisecond},
			"coord download: overdue: tracker " + url + " has not answered its connect request for 1m0s, 0s past its deadline; marked slow, still retrying\n"},
		{coordinator.Overdue{Kind: tracker.KindSchedule, Tracker: url, Waited: time.Hour, Late: 2 * time.Second},
			"coord download: overdue: tracker " + url + ": the announce due 2s ago has not been sent; marked slow, still trying\n"},
		{coordinator.Overdue{Kind: swarm.LeaseKind, Worker: "node-a", Node: true, Waited: 30400 * time.Millisecond, Late: 400 * time.Millisecond},
			"coord download: overdue: swarm node node-a delivered no piece for 30s, 400ms past its lease deadline; its pieces go back to the pool if another worker can take them\n"},
		{coordinator.Overdue{Kind: swarm.LeaseKind, Worker: "local", Waited: 30 * time.Second, Late: 0},
			"coord download: overdue: the local peer swarm delivered no piece for 30s, 0s past its lease deadline; its pieces go back to the pool if another worker can take them\n"},
	} {
		var stderr bytes.Buffer
		env := &cmdEnv{stdout: io.Discard, stderr: &stderr, getenv: func(string) string { return "" }}
		_, tor := writeTorrent(t, nil)
		x := &transferCmd{env: env, name: "download", prog: newProgress(env, "none", time.Second, tor)}
		x.say(c.ev)
		if got := stderr.String(); got != c.want {
			t.Errorf("got  %q\nwant %q", got, c.want)
		}
	}
}
