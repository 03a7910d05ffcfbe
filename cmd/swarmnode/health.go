package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"time"
)

// probes is what /healthz and /readyz (--http) report: the node is ready
// once its delegate endpoint listens and it has joined the cluster, and no
// longer once it is stopping. The flags are set by run's goroutine and
// read by the HTTP server's.
type probes struct {
	delegateUp atomic.Bool
	joined     atomic.Bool
	stopping   atomic.Bool
}

func (p *probes) ready() bool {
	return p.delegateUp.Load() && p.joined.Load() && !p.stopping.Load()
}

// handler serves GET /healthz (200 while the process serves HTTP) and GET
// /readyz (200 when ready, else 503), with the JSON bodies coord serve's
// probes have (docs/api.md).
func (p *probes) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeProbe(w, http.StatusOK, map[string]string{"status": "alive"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !p.ready() {
			writeProbe(w, http.StatusServiceUnavailable, map[string]string{
				"error": "not ready: the delegate endpoint is not up, the cluster not joined yet, or the node is stopping"})
			return
		}
		writeProbe(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	return mux
}

func writeProbe(w http.ResponseWriter, code int, body map[string]string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(body)
}

// startProbes serves the probes on --http, if given; stop closes the
// server.
func (n *node) startProbes() (stop func(), code int) {
	if n.o.http == "" {
		return func() {}, 0
	}
	ln, err := net.Listen("tcp", n.o.http)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, n.fail("cannot listen on %s for --http: port in use", n.o.http)
		}
		return nil, n.fail("--http: %v", err)
	}
	srv := &http.Server{Handler: n.probes.handler(), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	fmt.Fprintf(n.stderr, "swarmnode: probes on http://%s/healthz and /readyz\n", ln.Addr())
	return func() {
		srv.Close()
		<-done
	}, 0
}
