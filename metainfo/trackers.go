package metainfo

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// TrackerURLError is the error CheckTrackerURL returns: which URL cannot be
// announced to, and why. It matches ErrBadTrackerURL with errors.Is.
type TrackerURLError struct {
	URL    string
	Reason string // for example `scheme "file" is not supported (use http, https or udp)`
}

func (e *TrackerURLError) Error() string {
	return fmt.Sprintf("%v %s: %s", ErrBadTrackerURL, quoteURL(e.URL), e.Reason)
}

// Is makes errors.Is(err, ErrBadTrackerURL) true.
func (e *TrackerURLError) Is(target error) bool { return target == ErrBadTrackerURL }

// maxShownURL is how much of a URL an error message quotes.
const maxShownURL = 200

// quoteURL quotes u for a message, cut short if it is very long (a hostile
// torrent may carry megabytes of URL).
func quoteURL(u string) string {
	if len(u) > maxShownURL {
		return strconv.Quote(u[:maxShownURL]) + fmt.Sprintf("... (%d bytes)", len(u))
	}
	return strconv.Quote(u)
}

// clip cuts a part of a URL quoted in a reason to a readable length.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// CheckTrackerURL reports whether raw is a tracker URL Flotilla can
// announce to: http or https with a host, or udp with a host and a port
// (BEP 15). Anything else (file://, javascript:, no host, a bad port, ...)
// gets a *TrackerURLError naming the URL and why, which matches
// ErrBadTrackerURL.
func CheckTrackerURL(raw string) error {
	bad := func(format string, args ...any) error {
		return &TrackerURLError{URL: raw, Reason: fmt.Sprintf(format, args...)}
	}
	if strings.TrimSpace(raw) == "" {
		return bad("the URL is empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return bad("it does not parse as a URL: %s", clip(err.Error()))
	}
	switch u.Scheme {
	case "http", "https", "udp":
	case "":
		return bad("it has no scheme (use http://, https:// or udp://)")
	default:
		return bad("scheme %q is not supported (use http, https or udp)", clip(u.Scheme))
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return bad("it has no host (want %s://host[:port]/...)", u.Scheme)
	}
	port := u.Port()
	if port == "" && u.Scheme == "udp" {
		return bad("a udp tracker URL needs a port (udp://host:port)")
	}
	if port != "" {
		if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
			return bad("port %q is not a number from 1 to 65535", clip(port))
		}
	}
	return nil
}

// Trackers returns every distinct tracker URL of the torrent in BEP 12
// order (the announce-list if it names any, otherwise "announce"), usable
// or not; see Tiers for the grouping and ValidateTrackers for a check.
func (t *Torrent) Trackers() []string {
	var out []string
	for _, tier := range t.Tiers() {
		out = append(out, tier...)
	}
	return out
}

// maxListedTrackers is how many unusable URLs ValidateTrackers names.
const maxListedTrackers = 3

// ValidateTrackers returns nil if at least one of the torrent's trackers
// is usable (CheckTrackerURL). Otherwise it returns an error matching
// ErrNoUsableTracker that names the unusable URLs and why (it then also
// matches ErrBadTrackerURL), or says that the torrent lists no tracker.
// Unusable URLs next to a usable one are not an error; a caller may warn
// about them with CheckTrackerURL.
func (t *Torrent) ValidateTrackers() error {
	urls := t.Trackers()
	if len(urls) == 0 {
		return fmt.Errorf("%w: the torrent lists no tracker", ErrNoUsableTracker)
	}
	var bad []*TrackerURLError
	for _, u := range urls {
		err := CheckTrackerURL(u)
		if err == nil {
			return nil
		}
		var te *TrackerURLError
		errors.As(err, &te)
		bad = append(bad, te)
	}
	return &noUsableTrackerError{bad: bad}
}

// noUsableTrackerError lists every tracker of a torrent as unusable.
type noUsableTrackerError struct{ bad []*TrackerURLError }

func (e *noUsableTrackerError) Error() string {
	var b strings.Builder
	b.WriteString(ErrNoUsableTracker.Error())
	b.WriteString(": ")
	for i, te := range e.bad {
		if i == maxListedTrackers {
			fmt.Fprintf(&b, "; and %d more", len(e.bad)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %s", quoteURL(te.URL), te.Reason)
	}
	return b.String()
}

// Is makes errors.Is match ErrNoUsableTracker and ErrBadTrackerURL.
func (e *noUsableTrackerError) Is(target error) bool {
	return target == ErrNoUsableTracker || target == ErrBadTrackerURL
}
