//go:build !linux

package lowwater

import (
	"errors"
	"net"
)

const tcpSupported = false

// setTCP is not supported here: other systems' pollers do not all honour
// SO_RCVLOWAT the same way.
func setTCP(*net.TCPConn, int) error { return errors.ErrUnsupported }
