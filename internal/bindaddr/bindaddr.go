// Package bindaddr makes a tracker client talk from one specific local
// address. Trackers record the source address of an announce as the peer's
// address, so a program whose peer listener is bound to one IP of a host
// with several must announce from that IP too.
package bindaddr

import (
	"net"
	"net/http"

	"flotilla/tracker"
)

// Tracker points cfg's HTTP dialer and UDP socket at ip. An unspecified or
// nil ip leaves cfg alone.
func Tracker(cfg *tracker.Config, ip net.IP) {
	if ip == nil || ip.IsUnspecified() {
		return
	}
	if ip.To4() != nil {
		cfg.UDPListen4 = net.JoinHostPort(ip.String(), "0")
	} else {
		cfg.UDPListen6 = net.JoinHostPort(ip.String(), "0")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: cfg.HTTPTimeout}).DialContext
	tr.ResponseHeaderTimeout = cfg.HTTPTimeout
	cfg.HTTPClient = &http.Client{Transport: tr, Timeout: cfg.HTTPTimeout}
}
