package trackertest

import (
	"bytes"
	"compress/gzip"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"flotilla/tracker/internal/wire"
)

// HTTPBehavior scripts an HTTP tracker.
type HTTPBehavior struct {
	Failure     string        // answer with this failure reason
	Warning     string        // add a warning message
	TrackerID   string        // hand out this tracker id
	Interval    time.Duration // default 30 min
	MinInterval time.Duration
	DictModel   bool        // list peers as dictionaries (with peer ids) instead of compact
	ExtraPeers  []wire.Peer // returned in addition to the swarm's members (IPv6 ones in peers6)
	Garbage     bool        // answer with bytes that are not bencode
	Oversized   int         // answer with a body of this many bytes
	Hang        bool        // never answer (until the client gives up)
	Gzip        bool        // gzip the body when the client accepts it
	Status      int         // HTTP status (default 200)
}

// HTTPTracker is a fake HTTP tracker (httptest server on 127.0.0.1).
type HTTPTracker struct {
	URL       string // http://127.0.0.1:port/announce
	ScrapeURL string

	srv   *httptest.Server
	swarm *swarm

	mu       sync.Mutex
	behavior HTTPBehavior
	queries  []string    // raw query strings of announces, in order
	times    []time.Time // when each announce arrived, in order

	announces, scrapes atomic.Int64
	hang               chan struct{}
}

// NewHTTP starts an HTTP tracker on 127.0.0.1.
func NewHTTP() *HTTPTracker {
	t := &HTTPTracker{swarm: newSwarm(), hang: make(chan struct{})}
	t.srv = httptest.NewServer(http.HandlerFunc(t.serve))
	t.URL = t.srv.URL + "/announce"
	t.ScrapeURL = t.srv.URL + "/scrape"
	return t
}

// SetBehavior changes the script under the tracker's lock.
func (t *HTTPTracker) SetBehavior(f func(*HTTPBehavior)) {
	t.mu.Lock()
	f(&t.behavior)
	t.mu.Unlock()
}

// Announces and Scrapes count requests.
func (t *HTTPTracker) Announces() int64 { return t.announces.Load() }

// Scrapes counts scrape requests.
func (t *HTTPTracker) Scrapes() int64 { return t.scrapes.Load() }

// Queries returns the raw query strings of the announces received.
func (t *HTTPTracker) Queries() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.queries...)
}

// AnnounceTimes returns when each announce arrived, in order.
func (t *HTTPTracker) AnnounceTimes() []time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]time.Time(nil), t.times...)
}

// Close stops the server (releasing hanging requests first).
func (t *HTTPTracker) Close() {
	close(t.hang)
	t.srv.CloseClientConnections()
	t.srv.Close()
}

// rawParam returns the percent-decoded value of the first key=... in q,
// keeping binary bytes as they are.
func rawParam(q, key string) (string, bool) {
	for _, kv := range strings.Split(q, "&") {
		k, v, _ := strings.Cut(kv, "=")
		if k == key {
			b, ok := unescape(v)
			return b, ok
		}
	}
	return "", false
}

func unescape(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '%':
			if i+2 >= len(s) {
				return "", false
			}
			n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", false
			}
			b.WriteByte(byte(n))
			i += 2
		case '+':
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

func (t *HTTPTracker) serve(w http.ResponseWriter, r *http.Request) {
	t.mu.Lock()
	beh := t.behavior
	if r.URL.Path == "/announce" {
		t.queries = append(t.queries, r.URL.RawQuery)
		t.times = append(t.times, time.Now())
	}
	t.mu.Unlock()
	if beh.Hang {
		select {
		case <-r.Context().Done():
		case <-t.hang:
		}
		return
	}
	var body []byte
	switch {
	case beh.Garbage:
		body = []byte("<html>this is not bencode</html>")
	case beh.Oversized > 0:
		body = bytes.Repeat([]byte{'x'}, beh.Oversized)
	case beh.Failure != "":
		body = wire.EncodeHTTPFailure(beh.Failure)
	case r.URL.Path == "/scrape":
		t.scrapes.Add(1)
		files := map[[20]byte]wire.ScrapeStats{}
		for _, kv := range strings.Split(r.URL.RawQuery, "&") {
			if k, v, _ := strings.Cut(kv, "="); k == "info_hash" {
				if h, ok := unescape(v); ok && len(h) == 20 {
					files[[20]byte([]byte(h))] = t.swarm.scrape([20]byte([]byte(h)))
				}
			}
		}
		body = wire.EncodeHTTPScrape(files)
	case r.URL.Path == "/announce":
		t.announces.Add(1)
		body = t.announce(r, beh)
	default:
		http.NotFound(w, r)
		return
	}
	status := beh.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.Header().Set("Content-Type", "text/plain")
	if beh.Gzip && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(body)
		zw.Close()
		body = gz.Bytes()
		w.Header().Set("Content-Encoding", "gzip")
	}
	w.WriteHeader(status)
	w.Write(body)
}

func (t *HTTPTracker) announce(r *http.Request, beh HTTPBehavior) []byte {
	q := r.URL.RawQuery
	ih, ok1 := rawParam(q, "info_hash")
	pid, ok2 := rawParam(q, "peer_id")
	port, err := strconv.Atoi(r.URL.Query().Get("port"))
	if !ok1 || !ok2 || len(ih) != 20 || len(pid) != 20 || err != nil || port < 0 || port > 65535 {
		return wire.EncodeHTTPFailure("bad announce parameters")
	}
	left, _ := strconv.ParseInt(r.URL.Query().Get("left"), 10, 64)
	numwant := int32(-1)
	if n, err := strconv.Atoi(r.URL.Query().Get("numwant")); err == nil {
		numwant = int32(n)
	}
	ev := wire.EventNone
	switch r.URL.Query().Get("event") {
	case "started":
		ev = wire.EventStarted
	case "completed":
		ev = wire.EventCompleted
	case "stopped":
		ev = wire.EventStopped
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	ip, _ := netip.ParseAddr(host)
	req := wire.AnnounceRequest{InfoHash: [20]byte([]byte(ih)), PeerID: [20]byte([]byte(pid)),
		Port: uint16(port), Left: left, NumWant: numwant, Event: ev}
	peers, seeders, leechers := t.swarm.announce(&req, netip.AddrPortFrom(ip, 0))
	if !beh.DictModel {
		for i := range peers {
			peers[i].ID = ""
		}
	}
	peers = append(peers, beh.ExtraPeers...)
	interval := beh.Interval
	if interval == 0 {
		interval = 30 * time.Minute
	}
	return wire.EncodeHTTPAnnounce(&wire.AnnounceResponse{Interval: interval, MinInterval: beh.MinInterval,
		TrackerID: beh.TrackerID, Warning: beh.Warning, Seeders: seeders, Leechers: leechers, Peers: peers})
}
