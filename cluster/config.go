package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// Profiles select memberlist's timing presets.
const (
	ProfileLAN   = "lan"   // memberlist.DefaultLANConfig: the default
	ProfileWAN   = "wan"   // memberlist.DefaultWANConfig: slower probes, for links with high latency
	ProfileLocal = "local" // memberlist.DefaultLocalConfig: fast failure detection, for tests on loopback
)

// DefaultPort is the cluster's default gossip port (memberlist's): the
// port of DefaultConfig's BindAddr, of a Join entry without one when this
// member binds a random port, and of --cluster-listen HOST in both
// programs. The delegate endpoint is conventionally the next port.
const DefaultPort = 7946

// ErrConfig is wrapped by every error for an invalid Config.
var ErrConfig = errors.New("cluster: invalid config")

// Resolver returns every address of host (A and AAAA records).
type Resolver func(ctx context.Context, host string) ([]netip.Addr, error)

// Config configures a cluster member. Start copies it; the caller's value is
// never changed.
type Config struct {
	// Name must be unique in the cluster. Empty means "<hostname>@<gossip
	// address>", unique even for several members on one host.
	Name string
	// BindAddr is the host:port where gossip listens, on TCP and UDP.
	// Port 0 picks a free port (see Cluster.Addr). Bind a specific address
	// or set AdvertiseAddr: with 0.0.0.0 memberlist advertises the first
	// private IP it finds, and with :: it cannot choose.
	BindAddr string
	// AdvertiseAddr is the optional host:port other members use to reach
	// this one (behind NAT, or when binding a wildcard address). A host
	// name is resolved once at Start; a missing port means the bound port.
	AdvertiseAddr string
	// Key is the cluster key. Gossip is encrypted with Key.Derive(PurposeGossip)
	// and members without the key cannot join. Required.
	Key Key
	// Meta is what this member advertises; see Meta.Validate.
	Meta Meta
	// Join lists addresses or DNS names of existing members. A name may
	// resolve to many IPs (a Kubernetes headless service): each is tried.
	// An entry without a port uses this member's gossip port, or
	// DefaultPort when BindAddr asks for a random port (0). Empty means
	// this member starts a new cluster and waits to be joined.
	Join []string
	// JoinRetry is the first wait between failed join attempts; it doubles
	// after each failure up to JoinRetryMax.
	JoinRetry    time.Duration
	JoinRetryMax time.Duration
	// Rejoin is how often, once joined, the Join entries are resolved again
	// and any address that is not a live member is joined: this brings back
	// a restarted seed (coordinator restart) and new pods behind a DNS name.
	// A member that finds itself alone retries at JoinRetry pace instead.
	// 0 disables re-joining.
	Rejoin time.Duration
	// PushPullInterval is how often a member exchanges its whole state
	// with a random other member; 0 means 5 s, or the profile's if
	// shorter (see Start).
	PushPullInterval time.Duration
	// UpdateTimeout bounds how long UpdateMeta waits for its broadcast to
	// go out.
	UpdateTimeout time.Duration
	// Profile is ProfileLAN (default when empty), ProfileWAN or ProfileLocal.
	Profile string
	// Resolve looks up Join and AdvertiseAddr host names; nil means the
	// system resolver. Tests inject a fake one.
	Resolve Resolver
	// Logger receives our logs and memberlist's (at their own levels); nil
	// discards them.
	Logger *slog.Logger
}

// DefaultConfig returns a config for a LAN member. Callers still set Key,
// Meta and usually BindAddr and Join.
func DefaultConfig() Config {
	return Config{
		BindAddr:      net.JoinHostPort("0.0.0.0", strconv.Itoa(DefaultPort)),
		JoinRetry:     time.Second,
		JoinRetryMax:  30 * time.Second,
		Rejoin:        30 * time.Second,
		UpdateTimeout: 5 * time.Second,
		Profile:       ProfileLAN,
	}
}

// Validate reports the first problem with c, wrapping ErrConfig, ErrNoKey
// or ErrBadMeta.
func (c Config) Validate() error {
	if c.Key == (Key{}) {
		return fmt.Errorf("%w: %w", ErrConfig, ErrNoKey)
	}
	if _, _, err := splitBind(c.BindAddr); err != nil {
		return fmt.Errorf("%w: bind address: %w", ErrConfig, err)
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := splitHostOptPort(c.AdvertiseAddr); err != nil {
			return fmt.Errorf("%w: advertise address: %w", ErrConfig, err)
		}
	}
	for _, j := range c.Join {
		if _, _, err := splitHostOptPort(j); err != nil {
			return fmt.Errorf("%w: join address: %w", ErrConfig, err)
		}
	}
	if c.JoinRetry <= 0 || c.JoinRetryMax < c.JoinRetry {
		return fmt.Errorf("%w: need 0 < JoinRetry (%v) <= JoinRetryMax (%v)", ErrConfig, c.JoinRetry, c.JoinRetryMax)
	}
	if c.Rejoin < 0 {
		return fmt.Errorf("%w: negative Rejoin", ErrConfig)
	}
	if c.PushPullInterval < 0 {
		return fmt.Errorf("%w: negative PushPullInterval", ErrConfig)
	}
	if c.UpdateTimeout <= 0 {
		return fmt.Errorf("%w: UpdateTimeout must be positive", ErrConfig)
	}
	if _, err := profileConfig(c.Profile); err != nil {
		return err
	}
	if len(c.Name) > 255 {
		return fmt.Errorf("%w: name longer than 255 bytes", ErrConfig)
	}
	return c.Meta.Validate()
}

func profileConfig(p string) (*memberlist.Config, error) {
	switch p {
	case "", ProfileLAN:
		return memberlist.DefaultLANConfig(), nil
	case ProfileWAN:
		return memberlist.DefaultWANConfig(), nil
	case ProfileLocal:
		return memberlist.DefaultLocalConfig(), nil
	}
	return nil, fmt.Errorf("%w: unknown profile %q (want %q, %q or %q)", ErrConfig, p, ProfileLAN, ProfileWAN, ProfileLocal)
}

// splitBind splits a bind address: an IP literal and a port (0 allowed).
func splitBind(s string) (netip.Addr, int, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.Addr{}, 0, err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("%q: host must be an IP address", s)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return netip.Addr{}, 0, fmt.Errorf("%q: bad port", s)
	}
	return ip.Unmap(), p, nil
}

// splitHostOptPort splits "host:port", "host", "[v6]:port" or a bare IPv6
// address. port is 0 when absent.
func splitHostOptPort(s string) (string, int, error) {
	if s == "" {
		return "", 0, errors.New("empty address")
	}
	if ip, err := netip.ParseAddr(s); err == nil { // bare IP, v6 included
		return ip.Unmap().String(), 0, nil
	}
	host, port := s, "" // no colon: a plain host name
	if strings.Contains(s, ":") {
		var err error
		if host, port, err = net.SplitHostPort(s); err != nil {
			return "", 0, err
		}
	}
	if host == "" {
		return "", 0, fmt.Errorf("%q has no host", s)
	}
	p := 0
	if port != "" {
		var err error
		p, err = strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 {
			return "", 0, fmt.Errorf("%q: bad port", s)
		}
	}
	return host, p, nil
}
