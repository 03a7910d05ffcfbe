package lab

import (
	"context"
	"net"
	"os/exec"
)

// Host is one machine of a lab: an IPv4 address and a way to run programs
// and open connections as that machine. The loopback lab's hosts share the
// root network namespace (see Loopback); a namespace lab's hosts each live
// in their own namespace. Implementations must be safe for concurrent use.
type Host interface {
	// IP is the host's address as seen by the other hosts.
	IP() string
	// Command prepares (does not start) a program running on the host. The
	// program itself must be the command's process (for example through
	// exec(2) after entering a namespace) so that its rusage is measured.
	Command(ctx context.Context, name string, args ...string) *exec.Cmd
	// DialContext connects from the host, like net.Dialer.DialContext.
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
	// FreePort returns a TCP port on IP() that was free a moment ago and
	// whose UDP twin could be bound as well.
	FreePort() (int, error)
}
