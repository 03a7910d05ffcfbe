package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strconv"
	"testing"
	"time"

	"flotilla/internal/testenv"

	"github.com/hashicorp/go-multierror"
)

// slowRetry keeps the background join from retrying during a test.
const slowRetry = 10 * time.Second

// A Join entry without a port means this member's own gossip port when it
// chose one, and DefaultPort when it binds a random port (a one-off query
// of the members cannot expect the others to share its port).
func TestJoinEntryWithoutPort(t *testing.T) {
	t.Parallel()
	key := mustKey(t)
	resolve := func(ctx context.Context, host string) ([]netip.Addr, error) {
		if host != "seeds.flotilla.test" {
			return nil, fmt.Errorf("no such host %q", host)
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.71"), netip.MustParseAddr("127.0.0.72")}, nil
	}
	entries := []string{"127.0.0.70", "seeds.flotilla.test", "127.0.0.73:7000", "::1"}

	random := testConfig(t, "127.0.0.1", key) // BindAddr port 0
	random.Join, random.Resolve, random.JoinRetry, random.JoinRetryMax = entries, resolve, slowRetry, slowRetry
	c := startMember(t, random)
	got, err := c.joinTargets(false)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.0.0.70:7946", "127.0.0.71:7946", "127.0.0.72:7946", "127.0.0.73:7000", "[::1]:7946"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("random port: join targets %v, want %v", got, want)
	}

	port := testenv.FreePort(t, "127.0.0.1")
	fixed := testConfig(t, "127.0.0.1", key)
	fixed.BindAddr = "127.0.0.1:" + strconv.Itoa(port)
	fixed.Join, fixed.Resolve, fixed.JoinRetry, fixed.JoinRetryMax = entries, resolve, slowRetry, slowRetry
	c = startMember(t, fixed)
	got, err = c.joinTargets(false)
	if err != nil {
		t.Fatal(err)
	}
	p := ":" + strconv.Itoa(port)
	want = []string{"127.0.0.70" + p, "127.0.0.71" + p, "127.0.0.72" + p, "127.0.0.73:7000", "[::1]" + p}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("port %d: join targets %v, want %v", port, got, want)
	}
}

func TestJoinErrorsOnOneLine(t *testing.T) {
	refused := errors.New("dial tcp 127.0.0.1:1: connection refused")
	var merr *multierror.Error
	merr = multierror.Append(merr, fmt.Errorf("failed to join 127.0.0.1:1: %w", refused), errors.New("failed to join 127.0.0.2:1: timeout"))
	both := fmt.Errorf("%w and %w", errors.New("a"), errors.New("b"))
	err := flatten(errors.Join(errors.New("resolve x: no such host"), merr, both))
	want := "resolve x: no such host; failed to join 127.0.0.1:1: dial tcp 127.0.0.1:1: connection refused; failed to join 127.0.0.2:1: timeout; a and b"
	if err.Error() != want {
		t.Errorf("flattened:\n%q\nwant\n%q", err, want)
	}
	if !errors.Is(err, refused) {
		t.Error("errors.Is no longer finds a wrapped error")
	}
	if flatten(nil) != nil || flatten(errors.Join(nil, nil)) != nil || flatten(refused) != refused {
		t.Error("flatten of nil or of one error")
	}
}
