package coordinator

import (
	"context"
	"strings"
	"time"

	"flotilla/dht"
)

// DHT as a peer source. The Coordinator runs one DHT node (Config.DHT)
// shared by its jobs; each job of a public torrent runs a get_peers lookup
// that announces the peer port at start, every dhtEvery, and when the
// job's loop finds peers short (at most once per dhtMinGap). Peers go to
// the sub-chief through the loop, as tracker peers do. Private torrents
// (private=1) never use the DHT.
const (
	dhtEvery  = 15 * time.Minute
	dhtMinGap = time.Minute
)

// watchDHT starts the job's lookups, if the coordinator has a DHT node.
func (j *Job) watchDHT() {
	if j.c.dht == nil || j.cfg.Torrent.Info.Private {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	j.stopDHT = cancel
	j.dhtPoke = make(chan struct{}, 1)
	j.watches.Add(1)
	go j.dhtLookups(ctx)
}

// pokeDHT asks for a lookup soon (peers are short); it never blocks.
func (j *Job) pokeDHT() {
	if j.dhtPoke == nil {
		return
	}
	select {
	case j.dhtPoke <- struct{}{}:
	default:
	}
}

func (j *Job) dhtLookups(ctx context.Context) {
	defer j.watches.Done()
	ih := dht.ID(j.cfg.Torrent.InfoHash)
	port := j.c.Addr().Port
	timer := time.NewTimer(0)
	defer timer.Stop()
	last := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-j.dhtPoke:
			if time.Since(last) < dhtMinGap {
				continue
			}
		}
		last = time.Now()
		res, err := j.c.dht.GetPeers(ctx, ih, dht.LookupOptions{Announce: true, Port: port})
		if err != nil {
			return // the job or the node is closing
		}
		j.c.log.Debug("dht lookup", "peers", len(res.Peers), "queries", res.Queries, "announced", res.Announced, "took", res.Took)
		if len(res.Peers) > 0 {
			select {
			case j.peerLists <- peerList{url: "dht", addrs: res.Peers}:
			case <-ctx.Done():
				return
			}
		}
		timer.Reset(dhtEvery)
	}
}

// routeDHTAlert hands the DHT node the watchdog's alerts for its queries;
// it reports whether a was one.
func (c *Coordinator) routeDHTAlert(kind, owner string) bool {
	return c.dht != nil && kind == dht.QueryKind && strings.HasPrefix(owner, dht.OwnerPrefix)
}
