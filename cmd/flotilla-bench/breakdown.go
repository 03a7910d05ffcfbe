package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"flotilla/internal/lab"
)

// Where the time of a cluster run goes (issue 15): for every host, when
// its delegate session opened, when its job started on the node, when its
// WAN link first carried data and when its first piece was accepted, its
// share of the pieces and how long its WAN sat idle; when 95 % of the
// pieces were in and how long the last 5 % took; and what the
// coordinator's CPU went on (its --cpuprofile, by concern).

// wanSample is one reading of a host's WAN counters.
type wanSample struct {
	at time.Time
	rx uint64
}

// wanSampler reads every cluster host's WAN bytes received at a fixed
// pace until stopped.
type wanSampler struct {
	stopc, done chan struct{}
	once        sync.Once
	samples     map[string][]wanSample
}

func startWANSampler(l *lab.ClusterLab, every time.Duration) *wanSampler {
	s := &wanSampler{stopc: make(chan struct{}), done: make(chan struct{}), samples: map[string][]wanSample{}}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			for _, h := range l.Order {
				if rx, _, err := l.Hosts[h].LinkBytes("eth0"); err == nil {
					s.samples[h] = append(s.samples[h], wanSample{time.Now(), rx})
				}
			}
			select {
			case <-s.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// stop ends the sampling (once) and returns the samples.
func (s *wanSampler) stop() map[string][]wanSample {
	s.once.Do(func() { close(s.stopc) })
	<-s.done
	return s.samples
}

// writeWANSamples writes the samples (with --keep) as tab-separated lines
// of host, seconds from start and bytes received, for a closer look at
// a run than the breakdown gives. A failure to write is reported, not
// fatal: the run itself stands.
func writeWANSamples(path string, start time.Time, samples map[string][]wanSample) {
	var b strings.Builder
	b.WriteString("host\tt_s\trx_bytes\n")
	hosts := make([]string, 0, len(samples))
	for h := range samples {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		for _, s := range samples[h] {
			fmt.Fprintf(&b, "%s\t%.3f\t%d\n", h, s.at.Sub(start).Seconds(), s.rx)
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "flotilla-bench: the WAN samples were not kept: %v\n", err)
	}
}

// hostBreakdown is one host's part of a run; durations count from the
// coordinator's start, -1 when not seen.
type hostBreakdown struct {
	host, worker string // the lab's host and the sub-chief's worker ("local" on coord)
	session      time.Duration
	jobStarted   time.Duration
	firstWAN     time.Duration // first 100 ms with WAN rx above 10 % of the cap
	firstPiece   time.Duration
	lastPiece    time.Duration
	pieces       int
	wanMiB       float64       // WAN bytes received from the coordinator's start to its exit
	idle         time.Duration // WAN below 50 % of the cap between its first data and the last piece accepted
	idleStart    time.Duration // before its first WAN data
}

// breakdown is where a run's time went.
type breakdown struct {
	pieces      int
	at95, at100 time.Duration // 95 % and all of the pieces accepted
	hosts       []hostBreakdown
	profile     []profileShare
	profTotal   time.Duration
	note        string
	// The nodes' CPU (user+sys, all of them) and their CPU profiles, merged.
	nodeCPU       time.Duration
	nodeProfile   []profileShare
	nodeProfTotal time.Duration
	nodeNote      string
	// complete is when the sub-chief logged "download complete"; closing
	// lists what the coordinator's close steps took, as logged.
	complete time.Duration
	closing  []string
}

type profileShare struct {
	what string
	cpu  time.Duration
}

var (
	closeRE  = regexp.MustCompile(`msg="(job closed|left the cluster)" (.*)$`)
	acceptRE = regexp.MustCompile(`msg="piece accepted".* worker=(\S+)`)
	sessRE   = regexp.MustCompile(`msg="delegate session open".* node=(\S+)`)
)

// analyse reads a run from t0 to end: the coordinator's -v log, the
// nodes' -v logs by host, the WAN samples and caps (Mbit/s) by host.
func analyse(t0, end time.Time, log string, nodeLogs map[string]string, samples map[string][]wanSample, capMbit map[string]int) *breakdown {
	since := func(t time.Time) time.Duration { return t.Sub(t0) }
	bd := &breakdown{}
	hosts := map[string]*hostBreakdown{}
	get := func(worker string) *hostBreakdown {
		host := worker
		if worker == "local" {
			host = "coord"
		}
		if h, ok := hosts[host]; ok {
			return h
		}
		h := &hostBreakdown{host: host, worker: worker, session: -1, jobStarted: -1, firstWAN: -1, firstPiece: -1, lastPiece: -1}
		hosts[host] = h
		return h
	}
	get("local")
	for name := range nodeLogs {
		get(name)
	}
	var accepts []time.Duration
	for _, l := range strings.Split(log, "\n") {
		at, ok := logTime(l)
		if !ok {
			continue
		}
		if m := acceptRE.FindStringSubmatch(l); m != nil {
			h := get(m[1])
			d := since(at)
			if h.firstPiece < 0 {
				h.firstPiece = d
			}
			h.lastPiece = d
			h.pieces++
			accepts = append(accepts, d)
		} else if m := sessRE.FindStringSubmatch(l); m != nil && get(m[1]).session < 0 {
			get(m[1]).session = since(at)
		} else if strings.Contains(l, `msg="download complete"`) {
			bd.complete = since(at)
		} else if m := closeRE.FindStringSubmatch(l); m != nil {
			bd.closing = append(bd.closing, m[1]+": "+m[2])
		}
	}
	for name, nl := range nodeLogs {
		for _, l := range strings.Split(nl, "\n") {
			if strings.Contains(l, `msg="job started"`) {
				if at, ok := logTime(l); ok {
					get(name).jobStarted = since(at)
					break
				}
			}
		}
	}
	sort.Slice(accepts, func(i, j int) bool { return accepts[i] < accepts[j] })
	bd.pieces = len(accepts)
	if n := len(accepts); n > 0 {
		bd.at95 = accepts[(95*n+99)/100-1]
		bd.at100 = accepts[n-1]
	}
	for _, h := range hosts {
		capBps := float64(capMbit[h.host]) * 1e6 / 8
		s := samples[h.host]
		for i := 1; i < len(s); i++ {
			if s[i].at.Before(t0) || s[i-1].at.After(end) {
				continue
			}
			dt := s[i].at.Sub(s[i-1].at)
			got := float64(s[i].rx - s[i-1].rx)
			h.wanMiB += got / (1 << 20)
			rate := got / dt.Seconds()
			if capBps <= 0 {
				continue
			}
			if h.firstWAN < 0 {
				if rate > 0.1*capBps {
					h.firstWAN = since(s[i-1].at)
				} else {
					h.idleStart += dt
				}
				continue
			}
			if since(s[i].at) <= bd.at100 && rate < 0.5*capBps {
				h.idle += dt
			}
		}
	}
	for _, h := range hosts {
		bd.hosts = append(bd.hosts, *h)
	}
	sort.Slice(bd.hosts, func(i, j int) bool {
		return hostOrder(bd.hosts[i].host) < hostOrder(bd.hosts[j].host)
	})
	return bd
}

func hostOrder(h string) int {
	if h == "coord" {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimPrefix(h, "node"))
	return 1 + n
}

func (bd *breakdown) print(w io.Writer, r scalingRun) {
	fmt.Fprintf(w, "breakdown of %s (%d hosts, %.2f s; seconds from the coordinator's start; - = not seen):\n", r.Label, r.Hosts, r.Wall.Seconds())
	fmt.Fprintf(w, "  %-6s %8s %8s %9s %9s %9s %7s %6s %8s %9s %9s\n", "host", "session", "job", "WAN data", "1st piece", "last", "pieces", "share", "WAN MiB", "idle pre", "idle mid")
	sec := func(d time.Duration) string {
		if d < 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", d.Seconds())
	}
	for _, h := range bd.hosts {
		share := 0.0
		if bd.pieces > 0 {
			share = 100 * float64(h.pieces) / float64(bd.pieces)
		}
		fmt.Fprintf(w, "  %-6s %8s %8s %9s %9s %9s %7d %5.1f%% %8.1f %9.2f %9.2f\n", h.host, sec(h.session), sec(h.jobStarted), sec(h.firstWAN),
			sec(h.firstPiece), sec(h.lastPiece), h.pieces, share, h.wanMiB, h.idleStart.Seconds(), h.idle.Seconds())
	}
	fmt.Fprintf(w, "  95 %% of the %d pieces accepted at %.2f s, the last at %.2f s: the last 5 %% took %.2f s; exit at %.2f s\n",
		bd.pieces, bd.at95.Seconds(), bd.at100.Seconds(), (bd.at100 - bd.at95).Seconds(), r.Wall.Seconds())
	fmt.Fprintf(w, "  (WAN data: first 100 ms above 10 %% of the cap; idle pre: before it; idle mid: below 50 %% of the cap from then to the last piece)\n")
	fmt.Fprintf(w, "  complete (written) at %.2f s, exit at %.2f s; closing: %s\n", bd.complete.Seconds(), r.Wall.Seconds(), strings.Join(bd.closing, "; "))
	printProfile(w, "coordinator CPU profile", bd.profile, bd.profTotal, bd.note)
	nodes := 0
	for _, h := range bd.hosts {
		if h.host != "coord" {
			nodes++
		}
	}
	if nodes == 0 {
		return
	}
	fmt.Fprintf(w, "  the %d nodes' CPU: %.2f s in all (user+sys), %.2f s per GiB they delivered\n", nodes, bd.nodeCPU.Seconds(), bd.nodeCPU.Seconds()/nodeGiB(*bd, r))
	printProfile(w, "nodes' CPU profile (merged)", bd.nodeProfile, bd.nodeProfTotal, bd.nodeNote)
}

// nodeGiB is the GiB of the payload the nodes delivered (their share of
// the pieces).
func nodeGiB(bd breakdown, r scalingRun) float64 {
	pieces := 0
	for _, h := range bd.hosts {
		if h.host != "coord" {
			pieces += h.pieces
		}
	}
	if bd.pieces == 0 || pieces == 0 {
		return math.NaN()
	}
	return float64(r.Bytes) * float64(pieces) / float64(bd.pieces) / (1 << 30)
}

// printProfile prints a CPU profile's shares by concern on one line.
func printProfile(w io.Writer, title string, shares []profileShare, total time.Duration, note string) {
	if note != "" {
		fmt.Fprintf(w, "  %s: %s\n", title, note)
		return
	}
	var parts []string
	for _, p := range shares {
		parts = append(parts, fmt.Sprintf("%s %.2f s (%.0f%%)", p.what, p.cpu.Seconds(), 100*p.cpu.Seconds()/total.Seconds()))
	}
	fmt.Fprintf(w, "  %s, %.2f s sampled: %s\n", title, total.Seconds(), strings.Join(parts, ", "))
}

// concerns sorts a CPU sample by the first of these that any frame of its
// stack matches.
var concerns = []struct {
	what string
	re   *regexp.Regexp
}{
	{"hashing", regexp.MustCompile(`^crypto/(internal/fips140/)?sha1\.`)},
	{"encryption", regexp.MustCompile(`^(crypto/(tls|aes|cipher|rc4|ecdh|ed25519)\.|crypto/internal/fips140/(aes|ecdh|ed25519|edwards25519|nistec|bigmod)|golang.org/x/crypto/)`)},
	{"disk", regexp.MustCompile(`^flotilla/piecestore\.|^os\.\(\*File\)\.(WriteAt|Write|ReadAt|Sync)`)},
	{"socket I/O", regexp.MustCompile(`^(internal/runtime/syscall|syscall\.|internal/poll\.)`)},
	{"delegate", regexp.MustCompile(`^(flotilla/delegate\.|github.com/hashicorp/yamux|github.com/vmihailenco/msgpack)`)},
	{"gossip", regexp.MustCompile(`^(github.com/hashicorp/memberlist|flotilla/cluster\.)`)},
	{"peer wire", regexp.MustCompile(`^flotilla/(peerswarm|peerwire)\.`)},
	{"sub-chief", regexp.MustCompile(`^flotilla/swarm\.`)},
	{"locks", regexp.MustCompile(`^(sync\.\(\*(Mutex|RWMutex)\)|runtime\.lock)`)},
	{"GC", regexp.MustCompile(`^runtime\.(gcBgMarkWorker|gcDrain|mallocgc|scanobject|bgsweep|bgscavenge)`)},
}

// profileByConcern sums a CPU profile's samples by concern, with
// `go tool pprof -traces`.
func profileByConcern(bin string, profs ...string) ([]profileShare, time.Duration, string) {
	out, err := exec.Command("go", append([]string{"tool", "pprof", "-traces", bin}, profs...)...).Output()
	if err != nil {
		return nil, 0, fmt.Sprintf("go tool pprof -traces %s: %v", strings.Join(profs, " "), err)
	}
	shares, total := sumTraces(string(out))
	return shares, total, ""
}

// sumTraces sums the output of `go tool pprof -traces` by concern, largest
// first.
func sumTraces(out string) ([]profileShare, time.Duration) {
	sums := map[string]time.Duration{}
	var total time.Duration
	var cur time.Duration
	var frames []string
	flush := func() {
		if cur == 0 {
			return
		}
		what := "other"
	find:
		for _, c := range concerns {
			for _, f := range frames {
				if c.re.MatchString(f) {
					what = c.what
					break find
				}
			}
		}
		sums[what] += cur
		total += cur
		cur, frames = 0, frames[:0]
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "-----------+") {
			flush()
			continue
		}
		f := strings.Fields(l)
		if len(f) == 0 || !strings.HasPrefix(l, " ") {
			continue // the header
		}
		if d, err := time.ParseDuration(f[0]); err == nil && len(f) >= 2 {
			cur = d
			frames = append(frames[:0], f[1])
			continue
		}
		frames = append(frames, f[0])
	}
	flush()
	var shares []profileShare
	for w, d := range sums {
		shares = append(shares, profileShare{w, d})
	}
	sort.Slice(shares, func(i, j int) bool { return shares[i].cpu > shares[j].cpu })
	return shares, total
}

// dupBytes returns the length of the pieces the end game leased to a
// second swarm (the completion summary's end game line: at most this was
// fetched twice), -1 if the log does not say.
func dupBytes(log string) int64 {
	eg, err := lab.EndGameOf(log)
	if err != nil {
		return -1
	}
	return eg.DuplicatedBytes
}
