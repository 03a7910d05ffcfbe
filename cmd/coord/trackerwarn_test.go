package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"flotilla/coordinator"
)

// TestTrackerWarningText: the warning's exact sentences, for a tracker
// that never answered, for none that replied at all, and for trackers that
// answered and now all fail.
func TestTrackerWarningText(t *testing.T) {
	const a, b = "http://a.example/announce", "udp://b.example:6969/announce"
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	for _, c := range []struct {
		w    coordinator.TrackersSilent
		want string
	}{
		{coordinator.TrackersSilent{For: 15 * time.Second, Errors: []coordinator.TrackerError{{URL: a, Err: refused}}},
			"warning: no tracker has answered for 15s and there are no peers; still retrying (last errors: " + a + ": connection refused)"},
		{coordinator.TrackersSilent{For: 20*time.Second + 300*time.Millisecond},
			"warning: no tracker has answered for 20s and there are no peers; still retrying (none has replied yet)"},
		{coordinator.TrackersSilent{For: 15 * time.Second, Lapsed: true, Errors: []coordinator.TrackerError{{URL: a, Err: refused}, {URL: b, Err: refused}}},
			"warning: no tracker has answered (every one that did now fails) for 15s and there are no peers; still retrying (last errors: " +
				a + ": connection refused; " + b + ": connection refused)"},
		{coordinator.TrackersSilent{For: time.Minute, Errors: []coordinator.TrackerError{{URL: a, Err: errors.New(strings.Repeat("x", 150))}}},
			"warning: no tracker has answered for 1m0s and there are no peers; still retrying (last errors: " + a + ": " + strings.Repeat("x", 99) + "…)"},
	} {
		if got := trackerWarning(c.w); got != c.want {
			t.Errorf("got  %q\nwant %q", got, c.want)
		}
	}
}

// TestSayTrackerWarning: the warning reaches stderr as one line naming the
// command.
func TestSayTrackerWarning(t *testing.T) {
	var stderr bytes.Buffer
	env := &cmdEnv{stdout: io.Discard, stderr: &stderr, getenv: func(string) string { return "" }}
	_, tor := writeTorrent(t, nil)
	x := &transferCmd{env: env, name: "download", prog: newProgress(env, "none", time.Second, tor)}
	x.say(coordinator.TrackersSilent{For: 20 * time.Second})
	want := "coord download: warning: no tracker has answered for 20s and there are no peers; still retrying (none has replied yet)\n"
	if got := stderr.String(); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}
