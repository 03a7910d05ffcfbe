package swarmtest

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// Throttle starts a TCP proxy on loopback to target that passes what
// target sends at most rate bytes/s (a peer behind a capped link), and
// returns its address; what is sent to target passes unthrottled. It keeps
// a download on loopback going long enough for a test to act in the
// middle of it. The proxy and its connections close at the test's end.
func Throttle(t testing.TB, target net.Addr, rate int) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := []net.Conn{} // nil once closed
	track := func(cs ...net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if conns == nil {
			return false
		}
		conns = append(conns, cs...)
		return true
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp4", target.String())
			if err != nil {
				c.Close()
				continue
			}
			if !track(c, up) {
				c.Close()
				up.Close()
				return
			}
			wg.Add(2)
			go func() {
				defer wg.Done()
				io.Copy(up, c)
				up.Close()
			}()
			go func() {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, 16<<10)
				for {
					n, err := up.Read(buf)
					if n > 0 {
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
						time.Sleep(time.Duration(n) * time.Second / time.Duration(rate))
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		conns = nil
		mu.Unlock()
		wg.Wait()
	})
	a, err := netip.ParseAddrPort(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return a
}
