package clustertest

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"flotilla/cluster"
	"flotilla/delegate"
	"flotilla/internal/lab"
	"flotilla/metainfo"
	"flotilla/swarm"
)

// The hostile node is this test binary re-executed (inside a node's
// namespace) with hostileEnv set: a cluster member with the right key whose
// delegate endpoint answers every lease with random bytes of the right
// length, at once and without touching the WAN.
const (
	hostileEnv     = "FLOTILLA_CLUSTERTEST_HOSTILE"
	hostileKey     = "FLOTILLA_CLUSTERTEST_KEYFILE"
	hostileBind    = "FLOTILLA_CLUSTERTEST_BIND" // cluster address (gossip port; delegate is +1)
	hostileJoin    = "FLOTILLA_CLUSTERTEST_JOIN"
	hostileNodeFmt = "hostile node: "
)

// startHostileNode runs the hostile node as name on the host of that name.
func (e *env) startHostileNode(name string) *lab.Proc {
	e.t.Helper()
	return e.startHostileNodeOn(name, name)
}

// startHostileNodeOn runs the hostile node as name on host (a node that
// renamed itself keeps its host's addresses).
func (e *env) startHostileNodeOn(host, name string) *lab.Proc {
	e.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		e.t.Fatal(err)
	}
	h := e.host(host)
	cmd := h.Command(e.ctx, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), hostileEnv+"="+name, hostileKey+"="+e.keyFile,
		hostileBind+"="+h.ClusterAddr, hostileJoin+"="+e.joinAddr())
	p, err := lab.StartProc(e.cl, name, cmd, filepath.Join(e.dir, "logs", name+"-"+fmt.Sprint(hostileSeq.Add(1))+".log"))
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

var hostileSeq atomic.Int32 // log names of restarted hostile nodes

// hostileNodeMain is the hostile node's main: it serves until SIGTERM or
// SIGKILL (the lab's cleanup).
func hostileNodeMain() int {
	name := os.Getenv(hostileEnv)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	fail := func(err error) int { fmt.Fprintln(os.Stderr, hostileNodeFmt+err.Error()); return 1 }
	key, err := cluster.LoadKey(os.Getenv(hostileKey), func(string) string { return "" })
	if err != nil {
		return fail(err)
	}
	bind := os.Getenv(hostileBind)
	dln, err := net.Listen("tcp", net.JoinHostPort(bind, fmt.Sprint(lab.DefaultGossipPort+1)))
	if err != nil {
		return fail(err)
	}
	scfg := delegate.DefaultServerConfig()
	scfg.Key, scfg.Name, scfg.Listener, scfg.Logger = key, name, dln, log
	scfg.NewWorker = func(j delegate.Job) (swarm.Worker, error) {
		fmt.Fprintf(os.Stderr, hostileNodeFmt+"job %x: answering leases with garbage\n", j.InfoHash[:6])
		return newGarbageWorker(name, j.Info), nil
	}
	srv, err := delegate.NewServer(scfg)
	if err != nil {
		dln.Close()
		return fail(err)
	}
	go srv.Serve()
	defer srv.Close()
	ccfg := cluster.DefaultConfig()
	ccfg.Name, ccfg.BindAddr, ccfg.Key, ccfg.Logger = name, net.JoinHostPort(bind, fmt.Sprint(lab.DefaultGossipPort)), key, log
	ccfg.Join = []string{os.Getenv(hostileJoin)}
	ccfg.Rejoin = 5 * time.Second
	ccfg.Meta = cluster.Meta{Role: cluster.RoleSwarmNode, DelegateAddr: dln.Addr().String(), Version: "hostile", Slots: 80}
	c, err := cluster.Start(ccfg)
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	fmt.Fprintf(os.Stderr, hostileNodeFmt+"%s up, delegate %s\n", name, dln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		for range c.Events() {
		}
	}()
	<-ctx.Done()
	return 0
}

// garbageWorker is a swarm.Worker that "delivers" every leased piece at
// once, filled with random bytes. One goroutine (run) owns the queue's
// delivery; methods only append commands under mu.
type garbageWorker struct {
	name   string
	info   *metainfo.Info
	events chan swarm.WorkerEvent
	wake   chan struct{}
	quit   chan struct{}
	done   chan struct{}
	once   sync.Once

	mu        sync.Mutex
	queue     []int
	revoke    [][]int
	have      map[int]bool
	delivered int
}

func newGarbageWorker(name string, info *metainfo.Info) *garbageWorker {
	w := &garbageWorker{name: name, info: info, events: make(chan swarm.WorkerEvent),
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}), have: map[int]bool{}}
	go w.run()
	return w
}

func (w *garbageWorker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *garbageWorker) run() {
	defer close(w.done)
	defer close(w.events)
	for {
		w.mu.Lock()
		var ev *swarm.WorkerEvent
		if len(w.revoke) > 0 {
			back := []int{}
			drop := map[int]bool{}
			for _, i := range w.revoke[0] {
				drop[i] = true
			}
			kept := w.queue[:0]
			for _, i := range w.queue {
				if drop[i] {
					back = append(back, i)
				} else {
					kept = append(kept, i)
				}
			}
			w.queue, w.revoke = kept, w.revoke[1:]
			ev = &swarm.WorkerEvent{Kind: swarm.EventRevoked, Pieces: back}
		} else {
			for len(w.queue) > 0 && ev == nil {
				i := w.queue[0]
				w.queue = w.queue[1:]
				if w.have[i] {
					continue
				}
				data := make([]byte, w.info.PieceLen(i))
				rand.Read(data)
				w.delivered++
				ev = &swarm.WorkerEvent{Kind: swarm.EventPiece, Piece: i, Data: data}
			}
		}
		w.mu.Unlock()
		if ev == nil {
			select {
			case <-w.quit:
				return
			case <-w.wake:
			}
			continue
		}
		select {
		case <-w.quit:
			return
		case w.events <- *ev:
		}
	}
}

func (w *garbageWorker) Name() string { return w.name }
func (w *garbageWorker) Assign(pieces []int) {
	w.mu.Lock()
	w.queue = append(w.queue, pieces...)
	w.mu.Unlock()
	w.poke()
}
func (w *garbageWorker) Revoke(pieces []int, force bool) {
	w.mu.Lock()
	w.revoke = append(w.revoke, append([]int(nil), pieces...))
	w.mu.Unlock()
	w.poke()
}
func (w *garbageWorker) Have(pieces []int) {
	w.mu.Lock()
	for _, i := range pieces {
		w.have[i] = true
	}
	w.mu.Unlock()
}
func (w *garbageWorker) AddPeers([]netip.AddrPort)        {}
func (w *garbageWorker) Release(int)                      {}
func (w *garbageWorker) Events() <-chan swarm.WorkerEvent { return w.events }
func (w *garbageWorker) Status() swarm.WorkerStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	return swarm.WorkerStatus{Name: w.name, Leased: len(w.queue), Delivered: w.delivered, Updated: time.Now()}
}
func (w *garbageWorker) Close() error {
	w.once.Do(func() { close(w.quit) })
	<-w.done
	return nil
}

// TestGarbageWorker checks the hostile worker itself: it delivers every
// leased piece, with the right length and the wrong content, and gives
// back revoked pieces it has not delivered.
func TestGarbageWorker(t *testing.T) {
	info := &metainfo.Info{Name: "x", PieceLength: 1 << 14, Length: 3<<14 + 5, Pieces: make([]byte, 4*20)}
	w := newGarbageWorker("evil", info)
	defer w.Close()
	w.Assign([]int{0, 3})
	for range 2 {
		select {
		case ev := <-w.Events():
			if ev.Kind != swarm.EventPiece || int64(len(ev.Data)) != info.PieceLen(ev.Piece) {
				t.Fatalf("event %+v", ev.Kind)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no piece")
		}
	}
	w.Revoke([]int{1}, false)
	select {
	case ev := <-w.Events():
		if ev.Kind != swarm.EventRevoked || len(ev.Pieces) != 0 {
			t.Fatalf("revoke answered %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no revoke answer")
	}
	if s := w.Status(); s.Delivered != 2 || !strings.EqualFold(s.Name, "evil") {
		t.Fatalf("status %+v", s)
	}
}
