package coordinator

import (
	"context"
	"net/netip"
	"time"

	"flotilla/tracker"
)

// defaultMorePeersBelow is JobConfig.MorePeersBelow's default: a download
// with fewer than a quarter of MaxPeers connected asks for more.
const defaultMorePeersBelow = 0.25

// peerList is one tracker's up-to-date peer list (DESIGN point 11), as its
// watch read it after a change.
type peerList struct {
	url   string
	addrs []netip.AddrPort
}

// watchTrackers makes the trackers' peer lists the job's peer source:
// one goroutine per tracker waits for its list to change and sends the
// list to the job's loop, which hands it to the sub-chief (the sub-chief
// ignores addresses it knows). They end when the job closes.
func (j *Job) watchTrackers() {
	ctx, cancel := context.WithCancel(context.Background())
	j.stopWatch = cancel
	sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
	defer scancel()
	sts, err := j.ann.Status(sctx)
	if err != nil {
		j.c.log.Warn("cannot watch the trackers' peer lists", "err", err)
		return
	}
	for _, st := range sts {
		w, err := j.ann.WatchPeers(sctx, st.URL)
		if err != nil {
			j.c.log.Warn("cannot watch a tracker's peer list", "url", st.URL, "err", err)
			continue
		}
		j.watches.Add(1)
		go j.watchPeers(ctx, w, st.URL)
	}
}

// watchPeers forwards w's list to the loop each time it changes.
func (j *Job) watchPeers(ctx context.Context, w *tracker.PeerWatch, url string) {
	defer j.watches.Done()
	defer w.Close()
	for {
		select {
		case <-w.C:
		case <-ctx.Done():
			return
		}
		entries, err := w.Peers(ctx)
		if err != nil {
			return // the job or the trackers are closing
		}
		addrs := make([]netip.AddrPort, len(entries))
		for i, e := range entries {
			addrs[i] = e.Addr
		}
		select {
		case j.peerLists <- peerList{url: url, addrs: addrs}:
		case <-ctx.Done():
			return
		}
	}
}

// peerDemand decides when a download asks its trackers for more peers: while
// it is downloading and fewer than below peers are connected, once per
// tracker answer — an ask waits for the next announce's answer, and each
// tracker announces no sooner than its min interval allows. It is a passive
// value owned by the job's loop.
type peerDemand struct {
	below int
	asked bool // an ask (or the first announce) awaits a tracker's answer
}

// newPeerDemand asks below fraction×maxPeers connected peers. The first
// announce counts as an ask: the job waits for its peers first.
func newPeerDemand(maxPeers int, fraction float64) peerDemand {
	return peerDemand{below: int(fraction * float64(maxPeers)), asked: true}
}

// short reports whether to ask for more peers now, with peers connected;
// downloading is false once the download is complete.
func (d *peerDemand) short(peers int, downloading bool) bool {
	if d.asked || !downloading || peers >= d.below {
		return false
	}
	d.asked = true
	return true
}

// answered records that a tracker answered an announce (or failed to).
func (d *peerDemand) answered() { d.asked = false }
