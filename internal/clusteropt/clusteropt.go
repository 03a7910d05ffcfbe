// Package clusteropt holds the cluster flags that coord and swarmnode share
// (--cluster-listen, --advertise, --cluster-key-file, --join) and turns them
// into the addresses of the gossip and delegate endpoints.
package clusteropt

import (
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"flotilla/cluster"
)

// Options are the parsed cluster flags.
type Options struct {
	// Listen is where gossip binds (TCP and UDP): HOST:PORT, or HOST for
	// port cluster.DefaultPort (7946). The delegate endpoint binds the same
	// IP, one port up (any free port if Listen's is 0).
	Listen string
	// Advertise is the address other members use, if not Listen's.
	Advertise string
	// KeyFile holds the cluster key (else FLOTILLA_CLUSTER_KEY).
	KeyFile string
	// Join lists members (addresses or DNS names) to join, comma-separated.
	// An entry without a port means Listen's port, or cluster.DefaultPort
	// when Listen's port is 0 (see cluster.Config.Join).
	Join string
	// Slots is the capacity (connection slots) this member advertises. It
	// is not a flag: each program sets it from its own peer limit.
	Slots int
	// CoordinatorKeyFile (coord) holds the coordinator's private key,
	// CoordinatorPubKeyFile (swarmnode) its public half; see
	// delegate.LoadCoordinatorKey.
	CoordinatorKeyFile, CoordinatorPubKeyFile string
	// CoordinatorKey is the loaded coordinator key (not a flag; nil: the
	// one derived from the cluster key).
	CoordinatorKey ed25519.PrivateKey
}

// RegisterCoordinatorKey adds coord's --coordinator-key-file.
func (o *Options) RegisterCoordinatorKey(fs *flag.FlagSet) {
	fs.StringVar(&o.CoordinatorKeyFile, "coordinator-key-file", "", "file holding the coordinator key, which swarm nodes given its public half obey alone "+
		"(create one with `coord keygen --coordinator FILE > coordinator.pub`); default: $FLOTILLA_COORDINATOR_KEY, else a key derived from the cluster key")
}

// RegisterCoordinatorPubKey adds swarmnode's --coordinator-pubkey-file.
func (o *Options) RegisterCoordinatorPubKey(fs *flag.FlagSet) {
	fs.StringVar(&o.CoordinatorPubKeyFile, "coordinator-pubkey-file", "", "file holding the public half of the coordinator key: only that coordinator may command this node "+
		"(what `coord keygen --coordinator FILE` prints); default: $FLOTILLA_COORDINATOR_PUBKEY, else any holder of the cluster key")
}

// Register adds the flags to fs. joinUsage explains --join for the program.
func (o *Options) Register(fs *flag.FlagSet, joinUsage string) {
	fs.StringVar(&o.Listen, "cluster-listen", "", fmt.Sprintf("HOST[:PORT] where cluster gossip binds (TCP+UDP; port %d if omitted); the delegate endpoint binds the same host, port+1", cluster.DefaultPort))
	fs.StringVar(&o.Advertise, "advertise", "", "HOST:PORT other members should use to reach this one (default: --cluster-listen)")
	fs.StringVar(&o.KeyFile, "cluster-key-file", "", "file holding the cluster key (create one with `coord keygen > cluster.key`); default: $"+cluster.KeyEnv)
	fs.StringVar(&o.Join, "join", "", joinUsage+fmt.Sprintf("; a HOST without a port means --cluster-listen's port, or %d if that is 0", cluster.DefaultPort))
}

// Enabled reports whether cluster flags were given at all.
func (o *Options) Enabled() bool { return o.Listen != "" || o.Join != "" }

// JoinList is Join split on commas, blanks dropped.
func (o *Options) JoinList() []string {
	var out []string
	for _, s := range strings.Split(o.Join, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Key loads the cluster key; without one the error says how to make one.
func (o *Options) Key(getenv func(string) string) (cluster.Key, error) {
	return cluster.LoadKey(o.KeyFile, getenv)
}

// ErrAddr is wrapped by address errors.
var ErrAddr = errors.New("bad cluster address")

// Endpoints are the bind and advertised addresses derived from Options.
type Endpoints struct {
	GossipBind, GossipAdvertise     string // GossipAdvertise "" = memberlist's choice from the bind address
	DelegateBind, DelegateAdvertise string // DelegateAdvertise has a port of 0 until the listener is bound
}

// Endpoints derives the gossip and delegate addresses.
func (o *Options) Endpoints() (Endpoints, error) {
	var e Endpoints
	if o.Listen == "" {
		return e, fmt.Errorf("%w: --cluster-listen HOST:PORT is required", ErrAddr)
	}
	listen := withDefaultPort(o.Listen)
	host, port, err := splitPort(listen)
	if err != nil {
		return e, err
	}
	e.GossipBind = listen
	dport := 0
	if port != 0 {
		if port == 65535 {
			return e, fmt.Errorf("%w: --cluster-listen port 65535 leaves no port for the delegate endpoint", ErrAddr)
		}
		dport = port + 1
	}
	e.DelegateBind = net.JoinHostPort(host, strconv.Itoa(dport))
	advHost := host
	if o.Advertise != "" {
		ah, ap, err := splitPort(o.Advertise)
		if err != nil {
			return e, err
		}
		e.GossipAdvertise = o.Advertise
		advHost = ah
		if ap != 0 && port != 0 {
			dport = ap + 1
		}
	}
	if ip := net.ParseIP(advHost); ip != nil && ip.IsUnspecified() {
		return e, fmt.Errorf("%w: --cluster-listen %s binds every address; give --advertise HOST:PORT so members know which to use", ErrAddr, o.Listen)
	}
	e.DelegateAdvertise = net.JoinHostPort(advHost, strconv.Itoa(dport))
	return e, nil
}

// WithDelegatePort fills in the delegate port once its listener is bound
// (needed when it was 0).
func (e Endpoints) WithDelegatePort(port int) Endpoints {
	host, _, _ := net.SplitHostPort(e.DelegateAdvertise)
	e.DelegateAdvertise = net.JoinHostPort(host, strconv.Itoa(port))
	return e
}

// withDefaultPort adds cluster.DefaultPort to an address that has no port:
// "host", "10.0.0.1", "::1" or "[::1]".
func withDefaultPort(addr string) string {
	host := addr
	if ip, err := netip.ParseAddr(addr); err == nil {
		host = ip.String()
	} else if inner, ok := strings.CutPrefix(addr, "["); ok && strings.HasSuffix(inner, "]") {
		host = strings.TrimSuffix(inner, "]")
	} else if strings.Contains(addr, ":") || addr == "" {
		return addr
	}
	return net.JoinHostPort(host, strconv.Itoa(cluster.DefaultPort))
}

func splitPort(addr string) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%w: %q is not HOST:PORT", ErrAddr, addr)
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%w: %q has a bad port", ErrAddr, addr)
	}
	if host == "" {
		return "", 0, fmt.Errorf("%w: %q needs a host (bind a specific address so members can reach it, or give --advertise)", ErrAddr, addr)
	}
	return host, port, nil
}
