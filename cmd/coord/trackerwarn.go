package main

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"flotilla/coordinator"
)

// trackerWarning is the one-line warning for a TrackersSilent event,
// naming each failing tracker and its error.
func trackerWarning(w coordinator.TrackersSilent) string {
	what := "no tracker has answered"
	if w.Lapsed {
		what = "no tracker has answered (every one that did now fails)"
	}
	var errs []string
	for _, e := range w.Errors {
		errs = append(errs, e.URL+": "+briefError(e.Err))
	}
	last := "none has replied yet"
	if len(errs) > 0 {
		last = "last errors: " + strings.Join(errs, "; ")
	}
	return fmt.Sprintf("warning: %s for %s and there are no peers; still retrying (%s)",
		what, w.For.Round(time.Second), last)
}

// briefError shortens a tracker error for a one-line warning: a network
// error is reduced to its cause (the URL is printed beside it), and the
// text is capped.
func briefError(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		err = op.Err
	}
	msg := err.Error()
	if r := []rune(msg); len(r) > 100 {
		msg = string(r[:99]) + "…"
	}
	return msg
}
