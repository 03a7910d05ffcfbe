package lab

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
)

// Loopback is a Host on one address of 127.0.0.0/8 in the current network
// namespace. Every address of that range reaches the loopback interface on
// Linux, so distinct hosts need nothing created and no privileges.
type Loopback string

var _ Host = Loopback("")

// LoopbackHosts returns n hosts 127.0.0.first, 127.0.0.first+1, ...
func LoopbackHosts(first, n int) []Host {
	hs := make([]Host, n)
	for i := range hs {
		hs[i] = Loopback(fmt.Sprintf("127.0.0.%d", first+i))
	}
	return hs
}

// IP implements Host.
func (l Loopback) IP() string { return string(l) }

// Command implements Host.
func (l Loopback) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, name, args...)
}

// DialContext implements Host; connections leave from the host's address.
func (l Loopback) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(string(l))}}
	return d.DialContext(ctx, network, address)
}

// FreePort implements Host.
func (l Loopback) FreePort() (int, error) { return FreePort(string(l)) }

// FreePort returns a TCP port on ip that was free a moment ago and whose
// UDP twin could be bound too.
func FreePort(ip string) (int, error) {
	for range 50 {
		ln, err := net.Listen("tcp4", net.JoinHostPort(ip, "0"))
		if err != nil {
			return 0, fmt.Errorf("lab: free port on %s: %w", ip, err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp4", net.JoinHostPort(ip, strconv.Itoa(port)))
		ln.Close()
		if err != nil {
			continue
		}
		u.Close()
		return port, nil
	}
	return 0, fmt.Errorf("lab: no free TCP+UDP port on %s", ip)
}
