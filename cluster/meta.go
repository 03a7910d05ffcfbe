package cluster

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/hashicorp/memberlist"
	"github.com/vmihailenco/msgpack/v5"

	"flotilla/internal/mpcheck"
)

// Role says what a member does in the cluster.
type Role string

// Roles.
const (
	RoleCoordinator Role = "coordinator" // runs downloads and hands out leases
	RoleSwarmNode   Role = "swarmnode"   // downloads leased pieces for a coordinator
)

// MetaMaxSize is the largest encoded Meta memberlist carries.
const MetaMaxSize = memberlist.MetaMaxSize

// ErrBadMeta: a Meta is invalid or cannot be encoded or decoded.
var ErrBadMeta = errors.New("bad member metadata")

// Meta is what a member tells the others about itself. It travels in
// memberlist's node metadata, msgpack-encoded with one-letter keys; unknown
// keys are ignored so later versions may add fields.
type Meta struct {
	Role         Role   `msgpack:"r,omitempty"`
	DelegateAddr string `msgpack:"d,omitempty"` // host:port of the member's delegate endpoint ("" = none)
	Version      string `msgpack:"v,omitempty"` // program version, for display
	Slots        int    `msgpack:"s,omitempty"` // connection slots it offers
	Bandwidth    int64  `msgpack:"b,omitempty"` // configured bytes/s, 0 = unknown
}

// Validate checks a Meta before it is advertised.
func (m Meta) Validate() error {
	switch m.Role {
	case RoleCoordinator, RoleSwarmNode:
	default:
		return fmt.Errorf("%w: role %q (want %q or %q)", ErrBadMeta, m.Role, RoleCoordinator, RoleSwarmNode)
	}
	if m.DelegateAddr != "" {
		if err := checkHostPort(m.DelegateAddr); err != nil {
			return fmt.Errorf("%w: delegate address: %w", ErrBadMeta, err)
		}
	}
	if m.Slots < 0 {
		return fmt.Errorf("%w: negative slots %d", ErrBadMeta, m.Slots)
	}
	if m.Bandwidth < 0 {
		return fmt.Errorf("%w: negative bandwidth %d", ErrBadMeta, m.Bandwidth)
	}
	b, err := encodeWire(wireMeta{Meta: m, Leaving: true}) // the longer form
	if err != nil {
		return err
	}
	if len(b) > MetaMaxSize {
		return fmt.Errorf("%w: %d bytes encoded, limit %d", ErrBadMeta, len(b), MetaMaxSize)
	}
	return nil
}

// wireMeta is Meta as memberlist carries it, plus flags of this package.
//
// Leaving is set by Cluster.Leave just before memberlist's leave message:
// memberlist reports a graceful leave and a failure through the same
// NotifyLeave callback, with nothing to tell them apart (the state it
// passes in Node.State is never updated), so the receivers look at the last
// metadata the member announced.
type wireMeta struct {
	Meta    `msgpack:",inline"`
	Leaving bool `msgpack:"l,omitempty"`
}

func (m Meta) encode() ([]byte, error) { return encodeWire(wireMeta{Meta: m}) }

func encodeWire(w wireMeta) ([]byte, error) {
	b, err := msgpack.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("%w: encode: %w", ErrBadMeta, err)
	}
	return b, nil
}

func decodeWire(b []byte) (wireMeta, error) {
	var w wireMeta
	if len(b) == 0 {
		return w, nil
	}
	if len(b) > MetaMaxSize {
		return wireMeta{}, fmt.Errorf("%w: %d bytes, limit %d", ErrBadMeta, len(b), MetaMaxSize)
	}
	// The decoder allocates by declared lengths (up to 1 MiB for one
	// string) before it sees the input end: refuse lengths that the
	// metadata cannot hold first, so a member's 512 bytes cost ~512 bytes.
	if err := mpcheck.Check(b, metaMaxDepth, len(b)); err != nil {
		return wireMeta{}, fmt.Errorf("%w: %w", ErrBadMeta, err)
	}
	if err := msgpack.Unmarshal(b, &w); err != nil {
		return wireMeta{}, fmt.Errorf("%w: decode: %w", ErrBadMeta, err)
	}
	return w, nil
}

// metaMaxDepth bounds nesting in metadata: today's is a flat map; later
// versions may add a little structure.
const metaMaxDepth = 8

// checkHostPort accepts "host:port" with a non-empty host and a port in
// 1..65535.
func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%q: bad port", s)
	}
	return nil
}
