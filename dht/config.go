package dht

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"flotilla/watchdog"
)

// DefaultBootstrap are the well-known public routers, used when
// Config.Bootstrap is empty — never under go test (see ErrPublicInTest).
var DefaultBootstrap = []string{"router.bittorrent.com:6881", "dht.transmissionbt.com:6881", "router.utorrent.com:6881"}

// ErrConfig is wrapped by Config.Validate and New for a bad Config.
var ErrConfig = errors.New("dht: invalid config")

// ErrPublicInTest is returned by New when a test binary, or a program a
// test started (EnvNoPublic), would reach the public DHT: tests must pass
// their own Config.Bootstrap (coord: --dht-bootstrap) or turn the DHT off.
var ErrPublicInTest = errors.New("dht: a test would use the public bootstrap routers; give a local bootstrap list (--dht-bootstrap IP:PORT) or turn the DHT off (--dht=false)")

// EnvNoPublic is the environment variable that extends the test guard to
// programs a test starts: when it is set (to anything), New refuses the
// public routers and any bootstrap entry that is not a literal IP:PORT,
// as it does inside a test binary. internal/testenv sets it in every test
// binary that uses it, so the coord processes tests spawn inherit it.
const EnvNoPublic = "FLOTILLA_DHT_NO_PUBLIC"

// QueryKind is the watchdog kind of KRPC query packets. Their owner is
// OwnerPrefix followed by the transaction id in hex, so that whoever reads
// a shared watchdog's alerts can route them to Node.QueryAlert.
const (
	QueryKind   = "krpc"
	OwnerPrefix = "dht "
)

// Config configures a Node. Start from DefaultConfig; New never modifies
// the caller's copy.
type Config struct {
	// Listen is the UDP address to bind ("0.0.0.0:6881", "[::]:6881",
	// "127.0.0.1:0").
	Listen string
	// ListenFallback, if set, is bound instead when Listen's port is
	// already in use (another coord on the host): "0.0.0.0:0" for any
	// port. Empty: a busy Listen fails New.
	ListenFallback string
	// Bootstrap are HOST:PORT addresses of nodes to join through. Empty
	// means DefaultBootstrap, which is refused under go test.
	Bootstrap []string
	// ID is the node id; zero means the one in StateFile, else a random one.
	ID ID
	// StateFile, if set, is where the routing table (and our id) is kept
	// across restarts: read by New, written atomically every SaveInterval
	// and by Close.
	StateFile string
	// Watchdog is the ledger of KRPC queries (DESIGN point 2), shared with
	// the rest of the process; its alerts for QueryKind must be handed to
	// Node.QueryAlert by whoever reads them. Nil: the Node runs a private
	// one and reads its alerts itself.
	Watchdog *watchdog.Watchdog
	// Logger for rare events; nil discards.
	Logger *slog.Logger

	K            int           // bucket size and lookup width (BEP 5: 8)
	Alpha        int           // queries in flight per lookup (3)
	QueryTimeout time.Duration // a query not answered by then failed
	// MaxLookupQueries bounds the queries one lookup sends.
	MaxLookupQueries int
	// MaxPending bounds the queries awaiting an answer; a query beyond it
	// fails at once.
	MaxPending int
	// QueryRate and QueryBurst bound the queries one IP address may make
	// (per second, token bucket); 0 disables the limit. MaxRateIPs bounds
	// the addresses tracked.
	QueryRate  float64
	QueryBurst int
	MaxRateIPs int
	// Inbox bounds the datagrams waiting for the Node's loop; more are
	// dropped.
	Inbox int
	// PeersPerHash and MaxPeers bound the announced peers kept; PeerTTL is
	// how long an announce lasts.
	PeersPerHash, MaxPeers int
	PeerTTL                time.Duration
	// TokenRotation is how often the token secret changes: tokens are
	// accepted for between one and two rotations.
	TokenRotation time.Duration
	// RefreshInterval: a bucket unchanged this long is refreshed with a
	// find_node lookup.
	RefreshInterval time.Duration
	// SaveInterval is how often the routing table is written to StateFile.
	SaveInterval time.Duration
	// Tick is the period of the loop's housekeeping (refresh, expiry, and
	// the overdue check that backs up dropped watchdog alerts).
	Tick time.Duration
}

// DefaultConfig returns a Config for a real node on port 6881.
func DefaultConfig() Config {
	return Config{
		Listen: "0.0.0.0:6881", K: 8, Alpha: 3, QueryTimeout: 2 * time.Second,
		MaxLookupQueries: 96, MaxPending: 512,
		QueryRate: 10, QueryBurst: 50, MaxRateIPs: 8192, Inbox: 512,
		PeersPerHash: 200, MaxPeers: 20000, PeerTTL: 30 * time.Minute,
		TokenRotation: 5 * time.Minute, RefreshInterval: 15 * time.Minute,
		SaveInterval: 5 * time.Minute, Tick: time.Second,
	}
}

// Validate reports whether c is usable; errors wrap ErrConfig.
func (c Config) Validate() error {
	switch {
	case c.Listen == "":
		return fmt.Errorf("%w: no Listen address", ErrConfig)
	case c.K < 1 || c.Alpha < 1 || c.MaxLookupQueries < 1 || c.MaxPending < 1 || c.Inbox < 1:
		return fmt.Errorf("%w: K, Alpha, MaxLookupQueries, MaxPending and Inbox must be positive", ErrConfig)
	case c.QueryTimeout <= 0 || c.TokenRotation <= 0 || c.RefreshInterval <= 0 || c.Tick <= 0 || c.PeerTTL <= 0:
		return fmt.Errorf("%w: durations must be positive", ErrConfig)
	case c.QueryRate < 0 || (c.QueryRate > 0 && (c.QueryBurst < 1 || c.MaxRateIPs < 1)):
		return fmt.Errorf("%w: QueryRate needs QueryBurst and MaxRateIPs", ErrConfig)
	case c.PeersPerHash < 1 || c.MaxPeers < 1:
		return fmt.Errorf("%w: PeersPerHash and MaxPeers must be positive", ErrConfig)
	case c.StateFile != "" && c.SaveInterval <= 0:
		return fmt.Errorf("%w: SaveInterval must be positive with a StateFile", ErrConfig)
	}
	return nil
}

// bootstrapList is the list to join through, refusing the public routers
// inside a test binary.
func (c Config) bootstrapList() ([]string, error) {
	list := c.Bootstrap
	if len(list) == 0 {
		list = DefaultBootstrap
	}
	if testing.Testing() || os.Getenv(EnvNoPublic) != "" {
		for _, b := range list {
			for _, p := range DefaultBootstrap {
				if strings.EqualFold(b, p) {
					return nil, ErrPublicInTest
				}
			}
			if _, err := netip.ParseAddrPort(b); err != nil { // a name would need DNS
				return nil, fmt.Errorf("%w (%q is not an IP:PORT)", ErrPublicInTest, b)
			}
		}
	}
	return list, nil
}
