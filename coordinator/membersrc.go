package coordinator

import (
	"net"
	"net/netip"

	"flotilla/cluster"
)

// memberSources follows the addresses of the cluster's swarm nodes for
// the router (IncomingConfig.MaxPendingPerMember): a node's swarms dial
// us from its host, named by its gossip address and, when it is an IP
// literal, its delegate address. Owned by the Coordinator's run.
type memberSources map[string][]netip.Prefix

// update applies a membership event and reports whether the sources
// changed.
func (m memberSources) update(ev cluster.Event) bool {
	name := ev.Member.Name
	if ev.Kind == cluster.EventLeave || ev.Kind == cluster.EventFail || !isNode(ev.Member) {
		_, had := m[name]
		delete(m, name)
		return had
	}
	var srcs []netip.Prefix
	add := func(a netip.Addr) {
		if !a.IsValid() || a.IsUnspecified() {
			return
		}
		src := sourceOf(net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, 1)))
		if src.IsValid() {
			srcs = append(srcs, src)
		}
	}
	add(ev.Member.Addr.Addr())
	if host, _, err := net.SplitHostPort(ev.Member.Meta.DelegateAddr); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			add(a)
		}
	}
	m[name] = srcs
	return true
}

// set is every member source.
func (m memberSources) set() map[netip.Prefix]bool {
	s := map[netip.Prefix]bool{}
	for _, srcs := range m {
		for _, p := range srcs {
			s[p] = true
		}
	}
	return s
}
