package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"flotilla/coordinator"
	"flotilla/internal/memlimit"
	"flotilla/metainfo"
	"flotilla/service"
)

// tokenEnv holds the API token when no --api-token-file is given.
const tokenEnv = "FLOTILLA_API_TOKEN"

// serveMemoryLimit is coord serve's soft memory limit unless GOMEMLIMIT is
// set: several jobs' piece buffers are live at once.
const serveMemoryLimit = 512 << 20

// serveOpts are coord serve's flags.
type serveOpts struct {
	transferOpts
	state, data, http string
	tokenFile         string
	insecure          bool
	allowedHosts      string
	maxActive         int
	seed              bool
	seedRatio         float64
	seedTime          time.Duration
	maxUpload         int64
	shutdown          time.Duration
	logFormat         string
}

func runServe(ctx context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet("serve", "--state DIR --data DIR",
		"Runs the coordinator as a daemon: torrents added through the HTTP API (docs/api.md) are\n"+
			"downloaded (at most --max-active at once; the rest wait in a queue) and seeded to their\n"+
			"limits. The jobs are kept under --state, so a restart resumes every one where it was.\n"+
			"SIGTERM or Ctrl-C closes every job (trackers hear \"stopped\") and exits 0.",
		env)
	var o serveOpts
	o.registerServe(fs.FlagSet)
	fs.StringVar(&o.state, "state", "", "directory for the daemon's state: the job registry and the torrents added (created if missing)")
	fs.StringVar(&o.data, "data", "", "directory under which each job's files are written, in a directory named by the job's id (created if missing)")
	fs.StringVar(&o.http, "http", "127.0.0.1:8080", "TCP address of the HTTP API; port 0 picks a free one")
	fs.StringVar(&o.tokenFile, "api-token-file", "", "file holding the API's bearer token; default: $"+tokenEnv)
	fs.BoolVar(&o.insecure, "insecure-localhost", false, "serve the API without a token (only with a loopback --http address)")
	fs.StringVar(&o.allowedHosts, "allowed-host", "", "comma-separated extra host names the API answers for (besides localhost and the --http address); requests naming another Host are refused")
	fs.IntVar(&o.maxActive, "max-active", 2, "most downloads running at once (seeding jobs do not count)")
	fs.BoolVar(&o.seed, "seed", true, "seed completed torrents until their limits (--seed=false: stop at completion)")
	fs.Float64Var(&o.seedRatio, "seed-ratio", 1, "stop seeding once uploaded/size reaches this ratio; 0: no ratio limit")
	fs.DurationVar(&o.seedTime, "seed-time", 0, "stop seeding after this long; 0: no time limit")
	fs.Int64Var(&o.maxUpload, "max-upload", metainfo.MaxTorrentSize, "largest .torrent upload accepted, in bytes")
	fs.DurationVar(&o.shutdown, "shutdown-timeout", 20*time.Second, "longest wait for the jobs to close on SIGTERM")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format on stderr: text or json")
	pos, err := fs.parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	if len(pos) != 0 || o.state == "" || o.data == "" {
		fmt.Fprintln(env.stderr, "coord serve: expected --state DIR and --data DIR and no arguments (see --help)")
		return 2
	}
	return serve(ctx, env, o)
}

// registerServe adds the flags coord serve shares with coord download:
// the peer listener, peers, the cluster and the disk.
func (o *transferOpts) registerServe(fs *flag.FlagSet) {
	fs.StringVar(&o.listen, "listen", "0.0.0.0:6881", "TCP address to accept peer connections on (and whose port is announced); port 0 picks a free one")
	fs.IntVar(&o.maxPeers, "max-peers", 80, "most peer connections at once, per job")
	o.registerEncryption(fs)
	fs.StringVar(&o.peers, "peer", "", "comma-separated HOST:PORT peers every job connects to besides those the trackers give")
	fs.BoolVar(&o.verbose, "v", false, "log diagnostics")
	o.cluster.Register(fs, "comma-separated HOST[:PORT] of cluster members to join (optional: swarm nodes usually join the coordinator)")
	o.cluster.RegisterCoordinatorKey(fs)
	fs.BoolVar(&o.directIO, "direct-io", true, "write verified pieces with O_DIRECT where the file system supports it")
	fs.BoolVar(&o.sparse, "sparse", false, "create files sparse instead of reserving their space up front")
	o.dht.register(fs, "STATE/dht.json")
}

// serve runs the daemon until ctx is done.
func serve(ctx context.Context, env *cmdEnv, o serveOpts) int {
	w := env.stderr
	log, code := serveLogger(w, o)
	if code != 0 {
		return code
	}
	token, code := apiToken(env, o)
	if code != 0 {
		return code
	}
	cfg, code := serviceConfig(env, o, log)
	if code != 0 {
		return code
	}
	if env.getenv("GOMEMLIMIT") == "" {
		memlimit.Set(serveMemoryLimit)
	}
	// The API's address is taken first: a port in use fails before any
	// job starts.
	ln, err := net.Listen("tcp", o.http)
	if err != nil {
		return failf(w, "serve", "choose another address with --http (port 0 picks a free one)", "cannot listen on %s: %v", o.http, err)
	}
	svc, err := service.New(cfg)
	if err != nil {
		ln.Close()
		var le *coordinator.ListenError
		if errors.As(err, &le) {
			return failf(w, "serve", "choose another address with --listen (port 0 picks a free one)", "cannot listen for peers on %s: %v", le.Addr, le.Err)
		}
		return failErr(w, "serve", "", err)
	}
	hcfg := service.HTTPConfig{Token: token, MaxUpload: o.maxUpload, AllowedHosts: allowedHosts(ln.Addr().(*net.TCPAddr), o.allowedHosts)}
	srv := &http.Server{Handler: service.NewHandler(svc, hcfg), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(w, "coord serve: API on http://%s/api/v1/, peers on %s, state in %s, data in %s\n", ln.Addr(), svc.PeerAddr(), o.state, o.data)

	select {
	case <-ctx.Done():
	case err := <-served:
		svc.Close()
		return failf(w, "serve", "restart coord serve", "the API server stopped: %v", err)
	}
	fmt.Fprintln(w, "coord serve: stopping: closing every job (trackers hear \"stopped\", data is flushed)")
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	srv.Shutdown(sctx)
	cancel()
	if err := svc.Close(); err != nil {
		return failErr(w, "serve", "", err)
	}
	fmt.Fprintln(w, "coord serve: stopped")
	return 0
}

func serveLogger(w io.Writer, o serveOpts) (*slog.Logger, int) {
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	hopts := &slog.HandlerOptions{Level: level}
	switch o.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, hopts)), 0
	case "json":
		return slog.New(slog.NewJSONHandler(w, hopts)), 0
	}
	return nil, failf(w, "serve", "give text or json", "--log-format %q is not a log format", o.logFormat)
}

// apiToken reads the API token, and refuses to serve without one unless
// --insecure-localhost is given for a loopback address.
func apiToken(env *cmdEnv, o serveOpts) (string, int) {
	w := env.stderr
	// Trimmed as a token file is: a Kubernetes Secret made with
	// --from-file puts the file's newline into the variable.
	token := strings.TrimSpace(env.getenv(tokenEnv))
	if o.tokenFile != "" {
		b, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return "", failf(w, "serve", "check --api-token-file", "cannot read the API token: %v", err)
		}
		token = strings.TrimSpace(string(b))
		if token == "" {
			return "", failf(w, "serve", "write a token into it, for example with `head -c 32 /dev/urandom | base64 > FILE`", "%s is empty", o.tokenFile)
		}
		if fi, err := os.Stat(o.tokenFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
			fmt.Fprintf(w, "coord serve: warning: %s can be read by other users; restrict it with chmod 600 %s\n", o.tokenFile, o.tokenFile)
		}
	}
	if o.insecure {
		host, _, err := net.SplitHostPort(o.http)
		ip := net.ParseIP(host)
		if err != nil || !(host == "localhost" || ip != nil && ip.IsLoopback()) {
			return "", failf(w, "serve", "bind the API to a loopback address (--http 127.0.0.1:8080) or drop --insecure-localhost and give a token",
				"--insecure-localhost serves the API without a token, which is only allowed on a loopback address, not %s", o.http)
		}
		return token, 0
	}
	if token == "" {
		return "", failf(w, "serve", "give one with --api-token-file FILE or $"+tokenEnv+" (or, on a loopback --http address, --insecure-localhost)",
			"no API token")
	}
	return token, 0
}

// serviceConfig turns the flags into the service's configuration.
func serviceConfig(env *cmdEnv, o serveOpts, log *slog.Logger) (service.Config, int) {
	w := env.stderr
	cfg := service.DefaultConfig()
	cfg.StateDir, cfg.DataDir, cfg.MaxActive, cfg.Logger = o.state, o.data, o.maxActive, log
	cfg.Limits = service.Limits{Seed: o.seed, Ratio: o.seedRatio, Time: service.Duration(o.seedTime)}
	cfg.Coordinator.ListenAddr, cfg.Coordinator.Encryption = o.listen, o.encryption
	var err error
	if cfg.Coordinator.DHT, err = o.dht.config(filepath.Join(o.state, "dht.json")); err != nil {
		return cfg, failf(w, "serve", "fix the DHT flags", "%v", err)
	}
	cfg.CloseTimeout = o.shutdown
	cfg.Job.MaxPeers, cfg.Job.Preallocate, cfg.Job.DirectIO = o.maxPeers, !o.sparse, o.directIO
	if cfg.Peers, err = parsePeers(o.peers); err != nil {
		return cfg, failf(w, "serve", "give peers as HOST:PORT,HOST:PORT", "--peer: %v", err)
	}
	if o.maxUpload <= 0 {
		return cfg, failf(w, "serve", "give a positive number of bytes", "--max-upload %d is not a size", o.maxUpload)
	}
	for _, d := range []*string{&cfg.StateDir, &cfg.DataDir} {
		if err := checkWritableDir(*d); err != nil {
			return cfg, failf(w, "serve", "choose another directory, or fix its permissions", "%v", err)
		}
		if abs, err := filepath.Abs(*d); err == nil {
			*d = abs // the API reports where a job's data is
		}
	}
	if o.cluster.Enabled() {
		x := &transferCmd{env: env, name: "serve", o: o.transferOpts}
		if code := x.checkCluster(); code != 0 {
			return cfg, code
		}
		x.o.cluster.Slots = o.maxPeers
		ccfg, err := clusterConfig(x.o.cluster, x.key, log)
		if err != nil {
			return cfg, failErr(w, "serve", "cluster", err)
		}
		cfg.Cluster = &ccfg
	}
	if err := cfg.Validate(); err != nil {
		return cfg, failErr(w, "serve", "", err)
	}
	return cfg, 0
}

// allowedHosts are the Host names the API answers for: localhost, the
// address it is bound to (unless that is every address) and --allowed-host.
func allowedHosts(addr *net.TCPAddr, extra string) []string {
	hosts := append([]string(nil), service.DefaultAllowedHosts...)
	if !addr.IP.IsUnspecified() {
		hosts = append(hosts, addr.IP.String())
	}
	for _, h := range strings.Split(extra, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	return hosts
}
