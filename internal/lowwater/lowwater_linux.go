package lowwater

import (
	"net"
	"syscall"
)

const tcpSupported = true

// setTCP sets SO_RCVLOWAT. Linux wakes a poller of a TCP socket only once
// the mark is queued (or the peer closed, or the receive window is about
// to close, so a mark can never stall the sender), since 4.19.
func setTCP(c *net.TCPConn, n int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, n)
	}); err != nil {
		return err
	}
	return serr
}
