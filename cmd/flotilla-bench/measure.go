package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"flotilla/internal/lab"
)

// result is one measured download.
type result struct {
	Client string
	Run    int
	OK     bool
	Fail   string        // why it failed (never reported as a speed)
	Wall   time.Duration // start to exit (or to observed completion)
	MBps   float64       // payload bytes / 1e6 / wall seconds
	CPU    time.Duration // user+sys of the client process
	RSSMiB float64       // peak resident set of the client process
	// FirstReq is, for coord, when it requested its first block counted
	// from its start (its own report; 0: not reported).
	FirstReq time.Duration
	// React is the part of FirstReq after the first peer's handshake
	// reply (-1: not reported).
	React time.Duration
}

// firstRequest reads coord's "first block requested D after start[, R
// after the first peer's handshake (...)]" line from its log: D, and R (our own
// reaction time, -1 if not reported); 0 and -1 if there is no such line.
func firstRequest(log string) (d, react time.Duration) {
	const pre = "first block requested "
	for line := range strings.Lines(log) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), pre)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 3 || f[1] != "after" || !strings.HasPrefix(f[2], "start") {
			continue
		}
		v, err := time.ParseDuration(f[0])
		if err != nil {
			continue
		}
		react = -1
		if len(f) >= 7 && f[4] == "after" && f[5] == "the" && f[6] == "first" { // R after the first peer's handshake
			if r, err := time.ParseDuration(f[3]); err == nil {
				react = r
			}
		}
		return v, react
	}
	return 0, -1
}

// runOnce downloads the swarm's torrent once with c into a fresh directory
// under runDir and measures it. src is what the client is given: the
// .torrent's path or the magnet link. The output is verified against the payload.
func runOnce(ctx context.Context, c *client, host lab.Host, sw *lab.Swarm, src, runDir string, run int, timeout time.Duration, keep bool) result {
	r := result{Client: c.Name, Run: run}
	// Every client starts from the same disk state: the previous run's
	// dirty pages and its deleted output (discards) are flushed first, so
	// no client pays for another's writeback.
	syscall.Sync()
	dir := filepath.Join(runDir, fmt.Sprintf("%s-%d", c.Name, run))
	out := filepath.Join(dir, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		r.Fail = err.Error()
		return r
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	ip := host.IP()
	port, err := host.FreePort()
	if err != nil {
		r.Fail = err.Error()
		return r
	}
	args, err := c.Args(runEnv{Torrent: src, OutDir: out, IP: ip, Port: port})
	if err != nil {
		r.Fail = err.Error()
		return r
	}
	cl := &lab.Cleanup{}
	defer cl.Run()
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Not CommandContext with rctx: the timeout must not kill the process
	// before we note that it timed out; cl kills its process group.
	cmd := host.Command(context.Background(), c.Path, args...)
	cmd.Dir = out
	p, err := lab.StartProc(cl, c.Name, cmd, filepath.Join(dir, c.Name+".log"))
	if err != nil {
		r.Fail = err.Error()
		return r
	}
	doneAt, fail := awaitDone(ctx, rctx, c, p, sw, out, timeout)
	if fail != "" {
		r.Fail = fail
		return r
	}
	r.Wall = doneAt.Sub(p.Started)
	if ru, ok := p.Cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		r.RSSMiB = float64(ru.Maxrss) / 1024 // Linux: KiB
	}
	if c.ExitsWhenDone {
		if err := p.Err(); err != nil {
			r.Fail = fmt.Sprintf("%v; log ends: %s", err, p.Tail(300))
			return r
		}
	}
	if err := sw.Payload.Verify(out); err != nil {
		if errors.Is(err, lab.ErrMismatch) {
			r.Fail = "wrong output: " + err.Error()
		} else {
			r.Fail = err.Error()
		}
		return r
	}
	r.OK = true
	r.MBps = float64(sw.Payload.Total) / 1e6 / r.Wall.Seconds()
	if c.Name == "coord" {
		if b, err := os.ReadFile(filepath.Join(dir, c.Name+".log")); err == nil {
			r.FirstReq, r.React = firstRequest(string(b))
		}
	}
	return r
}

// awaitDone waits until the client's process p exits or, for a client that
// keeps running, its output in out is complete and correct, and returns
// when that was; or, when rctx ends first, stops p and says why.
func awaitDone(ctx, rctx context.Context, c *client, p *lab.Proc, sw *lab.Swarm, out string, timeout time.Duration) (time.Time, string) {
	var nextVerify time.Time
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.Done():
			return p.Ended(), ""
		case <-rctx.Done():
			p.Stop()
			if ctx.Err() != nil {
				return time.Time{}, "interrupted"
			}
			return time.Time{}, fmt.Sprintf("timed out after %v; log ends: %s", timeout, p.Tail(300))
		case <-tick.C:
			// A client that keeps running after completion is stopped once
			// its output is complete and correct; time is taken then.
			// Hashing is only tried when every byte is allocated, and after
			// a miss (a client that preallocates) not again for a while, so
			// polling does not steal the client's CPU.
			if !c.ExitsWhenDone && time.Now().After(nextVerify) && sw.Payload.Complete(out) {
				seen := time.Now() // the hash check's own time is not the client's
				if sw.Payload.Verify(out) == nil {
					p.Stop()
					return seen, ""
				}
				nextVerify = time.Now().Add(4 * time.Since(seen))
			}
		}
	}
}
