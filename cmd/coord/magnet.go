package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"

	"flotilla/dht"
	"flotilla/metadata"
	"flotilla/metainfo"
	"flotilla/tracker"
)

// resolveMagnet turns a magnet link given to coord download into a
// .torrent file: it fetches the info dictionary from the magnet's peers
// (x.pe, --peer, its trackers' peers and the DHT's), saves it beside the data and
// points x.path at it, so that the rest of the run is a plain download.
// The peers' connections stay open for the download (x.handover): it
// neither reconnects nor waits for their choke rounds again.
// The magnet's x.pe peers are added to --peer. A .torrent of the same
// info-hash already in the directory (saved by an earlier run) is used as
// it is.
func (x *transferCmd) resolveMagnet(ctx context.Context) int {
	w := x.env.stderr
	m, err := metainfo.ParseMagnet(x.path)
	if err != nil {
		return failf(w, x.name, "check the magnet link (it needs xt=urn:btih: with a 40-character hex or 32-character base32 info-hash)",
			"%s", strings.TrimPrefix(err.Error(), "metainfo: "))
	}
	if len(m.Peers) > 0 {
		x.o.peers = strings.Trim(x.o.peers+","+strings.Join(m.Peers, ","), ",")
	}
	if path := savedTorrent(x.dir, m.InfoHash); path != "" {
		// A run of the same command before saved it: resume without
		// asking peers again.
		x.path = path
		return 0
	}
	direct, err := parsePeers(x.o.peers)
	if err != nil {
		return failf(w, x.name, "give peers as HOST:PORT,HOST:PORT", "--peer: %v", err)
	}
	cfg := metadata.DefaultConfig()
	cfg.PeerID = tracker.NewPeerID()
	cfg.Peers = direct
	cfg.Encryption = x.o.encryption
	var trackers [][]string
	for _, tr := range m.Trackers {
		if metainfo.CheckTrackerURL(tr) == nil {
			trackers = append(trackers, []string{tr})
		}
	}
	var sources []func(context.Context) []netip.AddrPort // where Announce finds peers
	if len(trackers) > 0 {
		tc, err := tracker.New(tracker.DefaultConfig())
		if err != nil {
			return failErr(w, x.name, "trackers", err)
		}
		defer tc.Close()
		params := tracker.AnnounceParams{PeerID: cfg.PeerID, Port: listenPort(x.o.listen), Left: 1, NumWant: 50}
		sources = append(sources, func(ctx context.Context) []netip.AddrPort {
			var out []netip.AddrPort
			for _, r := range tc.ProbeTiers(ctx, m.InfoHash, trackers, params) {
				if r.Response != nil {
					for _, p := range r.Response.Peers {
						out = append(out, p.Addr)
					}
				}
			}
			return out
		})
	}
	// The DHT finds peers too, as for any public torrent (whether the
	// torrent is private is in the info, which is what we lack). Its node
	// lives until the info arrives; the download's own node then takes
	// the port and the saved routing table.
	dcfg, err := x.o.dht.config(userDHTState(x.env.getenv))
	if err != nil {
		return failf(w, x.name, "fix the DHT flags", "%v", err)
	}
	if dcfg != nil {
		node, err := dht.New(*dcfg)
		if err != nil {
			return x.listenFailed(err)
		}
		defer node.Close()
		sources = append(sources, func(ctx context.Context) []netip.AddrPort {
			res, _ := node.GetPeers(ctx, dht.ID(m.InfoHash), dht.LookupOptions{})
			return res.Peers
		})
	}
	if len(sources) > 0 {
		cfg.Announce = func(ctx context.Context) []netip.AddrPort {
			var out []netip.AddrPort
			for _, find := range sources {
				out = append(out, find(ctx)...)
			}
			return out
		}
	}
	if len(sources) == 0 && len(m.Peers) == 0 && len(direct) == 0 {
		return failf(w, x.name, "give peers with --peer HOST:PORT, use a magnet link with tr= trackers, or leave the DHT on",
			"the magnet link names no usable tracker and no peer, and the DHT is off: there is nobody to fetch the torrent's info from")
	}
	fmt.Fprintf(w, "coord %s: fetching the torrent's info from peers (magnet %x)\n", x.name, m.InfoHash)
	t, conns, err := metadata.FetchKeep(ctx, m, cfg)
	x.handover = conns // the download starts on them (see openJob)
	if err != nil {
		return failf(w, x.name, "check that the magnet's trackers or peers are reachable and seed this torrent, then run the same command again",
			"%v", err)
	}
	path, err := metadata.Save(t, x.dir)
	if err != nil {
		return failf(w, x.name, "choose another directory with --out, or fix its permissions", "%v", err)
	}
	fmt.Fprintf(w, "coord %s: got the torrent's info; saved it as %s\n", x.name, path)
	x.path = path
	return 0
}

// savedTorrent is the .torrent of info-hash ih that an earlier run saved
// in dir, "" if there is none.
func savedTorrent(dir string, ih [20]byte) string {
	paths, _ := filepath.Glob(filepath.Join(dir, "*.torrent"))
	for _, p := range paths {
		if t, err := metainfo.Load(p); err == nil && t.InfoHash == ih {
			return p
		}
	}
	return ""
}

// listenPort is the port of a --listen address, 0 if it has none.
func listenPort(addr string) uint16 {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	p, _ := strconv.ParseUint(port, 10, 16)
	return uint16(p)
}
