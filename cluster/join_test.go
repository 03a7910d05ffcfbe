package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
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

// flatten tells errors.Join's lists from other errors that wrap several
// by their type, not their text: an fmt.Errorf error that reads like a
// joined list stays one error.
func TestFlattenByType(t *testing.T) {
	a, b := errors.New("a"), errors.New("b")
	lookalike := fmt.Errorf("%w\n%w", a, b)
	err := flatten(errors.Join(lookalike, joinErrors{b, errors.Join(a)}))
	list, ok := err.(joinErrors)
	if !ok || len(list) != 3 || list[0] != lookalike || list[1] != b || list[2] != a {
		t.Fatalf("flatten = %#v, want [lookalike b a]", err)
	}
}

// A failed join is ErrJoin wrapping every cause, on one line, so that a
// caller classifies it with errors.Is.
func TestJoinFailureIsTyped(t *testing.T) {
	t.Parallel()
	errNoHost := errors.New("no such host")
	cfg := testConfig(t, "127.0.0.1", mustKey(t))
	cfg.Join = []string{"a.flotilla.test", "b.flotilla.test"}
	cfg.Resolve = func(context.Context, string) ([]netip.Addr, error) { return nil, errNoHost }
	cfg.JoinRetry, cfg.JoinRetryMax = slowRetry, slowRetry
	c := startMember(t, cfg)
	_, err := c.joinOnce(false)
	if !errors.Is(err, ErrJoin) || !errors.Is(err, errNoHost) {
		t.Fatalf("joinOnce = %v, want ErrJoin wrapping the resolver's error", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("joinOnce error spans lines: %q", err)
	}
}
