package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"time"
)

// resolveTimeout bounds one DNS lookup of a join entry.
const resolveTimeout = 10 * time.Second

// joinLoop is the join goroutine. Until a join succeeds it retries with
// exponential backoff (JoinRetry doubling up to JoinRetryMax). Afterwards it
// re-joins every Rejoin, and at JoinRetry pace while this member is alone
// or a Refresh is on. It stops at Close or Leave.
func (c *Cluster) joinLoop() {
	defer close(c.joinDone)
	if len(c.cfg.Join) == 0 {
		return // Start closed c.joined
	}
	delay := c.cfg.JoinRetry
	joined := false
	for {
		refreshing := time.Now().Before(c.refreshEnd)
		all, err := c.joinOnce(refreshing)
		c.joinMu.Lock()
		c.joinErr = err
		c.joinMu.Unlock()
		var wait time.Duration // 0: until Refresh, Leave or Close
		switch {
		case err != nil:
			c.log.Debug("join failed; will retry", "in", delay, "err", err)
			wait = delay
			delay = min(2*delay, c.cfg.JoinRetryMax)
		case !joined:
			joined = true
			close(c.joined)
			c.log.Info("joined cluster", "members", len(c.Members()))
			fallthrough
		default:
			delay = c.cfg.JoinRetry
			wait = c.cfg.Rejoin
		}
		if refreshing {
			if all {
				c.log.Debug("refresh: every join address answered")
				c.refreshEnd = time.Time{}
			} else {
				wait = c.cfg.JoinRetry
			}
		}
		if !c.sleep(wait, err == nil) {
			return
		}
	}
}

// Refresh makes this member join every Join address again, live members
// included, at JoinRetry pace for up to d, until one attempt reaches them
// all. A node calls it when it loses its coordinator: a coordinator
// restarted on the same address answers the node's probes as its old self
// did, so it would learn of the node only at the next push/pull state
// exchange (PushPullInterval) or Rejoin; a join is such an exchange, made
// now. It does not block; without Join entries it does nothing.
func (c *Cluster) Refresh(d time.Duration) {
	select {
	case c.refresh <- d:
	default: // one is pending already
	}
}

// sleep waits d (d <= 0: no limit); when watchAlone it wakes early once
// this member is alone. A Refresh wakes it too. It returns false at Close
// or Leave.
func (c *Cluster) sleep(d time.Duration, watchAlone bool) bool {
	var timeout <-chan time.Time
	if d > 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		timeout = timer.C
	}
	var tick <-chan time.Time
	if watchAlone {
		t := time.NewTicker(c.cfg.JoinRetry)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-c.ctx.Done():
			return false
		case <-c.leftCh:
			return false
		case <-timeout:
			return true
		case d := <-c.refresh:
			c.refreshEnd = time.Now().Add(d)
			return true
		case <-tick:
			if c.ml.NumMembers() <= 1 {
				c.log.Info("alone in the cluster; joining again")
				return true
			}
		}
	}
}

// joinOnce resolves the Join entries and joins every address that is not
// this member or (unless all) an already live one. It succeeds when,
// afterwards, another member is alive; reached reports whether every
// address it tried answered.
func (c *Cluster) joinOnce(all bool) (reached bool, err error) {
	targets, rerr := c.joinTargets(all)
	if len(targets) == 0 {
		if c.ml.NumMembers() > 1 {
			return rerr == nil, nil
		}
		if rerr != nil {
			return false, fmt.Errorf("%w: %w", ErrJoin, flatten(rerr))
		}
		return false, fmt.Errorf("%w: the join addresses lead only to this member", ErrJoin)
	}
	n, err := c.ml.Join(targets)
	reached = err == nil && rerr == nil && n == len(targets)
	if c.ml.NumMembers() > 1 {
		if err != nil || rerr != nil {
			c.log.Debug("some join addresses failed", "reached", n, "of", len(targets), "err", errors.Join(rerr, err))
		}
		return reached, nil
	}
	if err == nil { // reached only addresses of this very member
		err = errors.New("the join addresses lead only to this member")
	}
	return false, fmt.Errorf("%w: %w", ErrJoin, flatten(errors.Join(rerr, err)))
}

// joinErrors is a list of errors on one line. (memberlist's Join and
// errors.Join list theirs on several, which reads badly in a log line or
// a command's one-line error.)
type joinErrors []error

func (e joinErrors) Error() string {
	parts := make([]string, len(e))
	for i, err := range e {
		parts[i] = err.Error()
	}
	return strings.Join(parts, "; ")
}

func (e joinErrors) Unwrap() []error { return e }

// flatten turns a tree of joined errors (errors.Join, joinErrors,
// go-multierror) into one joinErrors, or the only error, or nil. It tells
// the lists apart by their types, never by their text; any other error
// with several wrapped errors (fmt.Errorf with several %w) keeps its own
// text. errors.Is and As still see every error in it.
func flatten(err error) error {
	var list joinErrors
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case joinErrors:
			for _, x := range e {
				walk(x)
			}
		case interface{ WrappedErrors() []error }: // go-multierror
			for _, x := range e.WrappedErrors() {
				walk(x)
			}
		case interface{ Unwrap() []error }:
			if reflect.TypeOf(err) != joinedType {
				list = append(list, err)
				return
			}
			for _, x := range e.Unwrap() {
				walk(x)
			}
		default:
			list = append(list, err)
		}
	}
	walk(err)
	switch len(list) {
	case 0:
		return nil
	case 1:
		return list[0]
	}
	return list
}

// joinedType is the dynamic type of the errors errors.Join returns.
var joinedType = reflect.TypeOf(errors.Join(errors.New("")))

// joinTargets resolves every Join entry to ip:port strings, leaving out

// joinTargets resolves every Join entry to ip:port strings, leaving out
// this member and (unless all) live members. The error collects failed
// lookups.
func (c *Cluster) joinTargets(all bool) ([]string, error) {
	skip := map[netip.AddrPort]bool{c.addr: true}
	if !all {
		for _, m := range c.Members() {
			skip[m.Addr] = true
		}
	}
	var targets []string
	var errs []error
	for _, entry := range c.cfg.Join {
		host, port, _ := splitHostOptPort(entry) // checked by Validate
		if port == 0 {
			port = c.joinPort()
		}
		ctx, cancel := context.WithTimeout(c.ctx, resolveTimeout)
		ips, err := resolveAll(ctx, c.cfg.Resolve, host)
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, ip := range ips {
			ap := netip.AddrPortFrom(ip, uint16(port))
			if skip[ap] {
				continue
			}
			skip[ap] = true
			targets = append(targets, ap.String())
		}
	}
	return targets, errors.Join(errs...)
}

// joinPort is the port of a Join entry that names none: this member's
// gossip port when BindAddr chose it (the members of a cluster usually
// share one, like pods behind a headless service), else DefaultPort. A
// member on a random port (BindAddr port 0, such as a one-off query of the
// members) cannot expect the others to listen on that same port.
func (c *Cluster) joinPort() int {
	if _, port, _ := splitBind(c.cfg.BindAddr); port != 0 {
		return c.port
	}
	return DefaultPort
}

// resolveAll returns host itself when it is an IP, else every address the
// resolver gives, unmapped.
func resolveAll(ctx context.Context, resolve Resolver, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip.Unmap()}, nil
	}
	ips, err := resolve(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", host)
	}
	out := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		if ip.IsValid() {
			out = append(out, ip.Unmap())
		}
	}
	return out, nil
}

func resolveOne(ctx context.Context, resolve Resolver, host string) (netip.Addr, error) {
	ips, err := resolveAll(ctx, resolve, host)
	if err != nil {
		return netip.Addr{}, err
	}
	if len(ips) == 0 {
		return netip.Addr{}, fmt.Errorf("resolve %s: no addresses", host)
	}
	return ips[0], nil
}

// systemResolve is the default Resolver: A and AAAA records.
func systemResolve(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}
