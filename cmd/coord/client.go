package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"flotilla/metainfo"
	"flotilla/service"
)

// serverEnv names the default --server of the client commands.
const serverEnv = "FLOTILLA_SERVER"

// clientOpts are the flags every client command (add, ls, show, pause,
// resume, rm) has.
type clientOpts struct {
	server    string
	tokenFile string
	json      bool
}

func (o *clientOpts) register(fs *flag.FlagSet, env *cmdEnv) {
	def := env.getenv(serverEnv)
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	fs.StringVar(&o.server, "server", def, "URL of coord serve's API (default: $"+serverEnv+", else http://127.0.0.1:8080)")
	fs.StringVar(&o.tokenFile, "token-file", "", "file holding the API token; default: $"+tokenEnv)
	fs.BoolVar(&o.json, "json", false, "print the API's JSON instead of a table")
}

// client returns the API client, reading the token.
func (o *clientOpts) client(env *cmdEnv, cmd string) (*service.Client, int) {
	token := env.getenv(tokenEnv)
	if o.tokenFile != "" {
		b, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return nil, failf(env.stderr, cmd, "check --token-file", "cannot read the API token: %v", err)
		}
		token = strings.TrimSpace(string(b))
	}
	return &service.Client{Server: o.server, Token: token}, 0
}

// clientCmd is one run of a client command: its flags and its client.
type clientCmd struct {
	name string
	env  *cmdEnv
	o    clientOpts
	c    *service.Client
	set  map[string]bool // the flags given
}

// newClientCmd parses a client command's flags (the common ones and those
// extra adds) and returns the command and its positional arguments; stop
// is set, with the exit status in code, when the command should return
// (help printed, a bad flag, an unreadable token).
func newClientCmd(env *cmdEnv, name, positional, summary string, args []string, extra func(*flag.FlagSet)) (*clientCmd, []string, int, bool) {
	fs := newFlagSet(name, positional, summary, env)
	x := &clientCmd{name: name, env: env}
	x.o.register(fs.FlagSet, env)
	if extra != nil {
		extra(fs.FlagSet)
	}
	pos, err := fs.parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return nil, nil, 0, true
	}
	if err != nil {
		return nil, nil, 2, true
	}
	x.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { x.set[f.Name] = true })
	c, code := x.o.client(env, name)
	if code != 0 {
		return nil, nil, code, true
	}
	x.c = c
	return x, pos, 0, false
}

// fail prints an API or connection error and returns 1.
func (x *clientCmd) fail(err error) int {
	var ae *service.APIError
	if errors.As(err, &ae) && ae.Status == 401 {
		return failf(x.env.stderr, x.name, "give the token of coord serve with --token-file or $"+tokenEnv, "%v", err)
	}
	return failf(x.env.stderr, x.name, "", "%v", err)
}

func (x *clientCmd) printJSON(v any) {
	enc := json.NewEncoder(x.env.stdout)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func runAdd(ctx context.Context, env *cmdEnv, args []string) int {
	var paused bool
	var ratio float64
	var seedTime time.Duration
	x, pos, code, stop := newClientCmd(env, "add", "TORRENT...",
		"Adds .torrent files to coord serve and prints each job's id.", args, func(fs *flag.FlagSet) {
			fs.BoolVar(&paused, "paused", false, "add without starting")
			fs.Float64Var(&ratio, "seed-ratio", 0, "this job's seed ratio limit (default: the daemon's); 0: none")
			fs.DurationVar(&seedTime, "seed-time", 0, "this job's seed time limit (default: the daemon's); 0: none")
		})
	if stop {
		return code
	}
	if len(pos) == 0 {
		fmt.Fprintln(env.stderr, "coord add: expected one or more TORRENT files (see --help)")
		return 2
	}
	opts := service.AddOptions{Paused: paused}
	if x.set["seed-ratio"] || x.set["seed-time"] {
		opts.Limits = &service.Limits{Seed: true, Ratio: ratio, Time: service.Duration(seedTime)}
	}
	code = 0
	for _, p := range pos {
		b, err := []byte(p), error(nil) // a magnet link goes to the service as it is
		if !metainfo.IsMagnet(p) {
			b, err = os.ReadFile(p)
		}
		if err != nil {
			code = failf(env.stderr, "add", "check the path", "%v", err)
			continue
		}
		in, err := x.c.Add(ctx, b, opts)
		var ae *service.APIError
		if errors.As(err, &ae) && ae.Status == 409 {
			fmt.Fprintf(env.stderr, "coord add: %s is already added\n", p)
		} else if err != nil {
			code = x.fail(fmt.Errorf("%s: %w", p, err))
			continue
		}
		if x.o.json {
			x.printJSON(in)
		} else {
			fmt.Fprintln(env.stdout, in.ID)
		}
	}
	return code
}

func runLs(ctx context.Context, env *cmdEnv, args []string) int {
	var watch bool
	var every time.Duration
	x, pos, code, stop := newClientCmd(env, "ls", "", "Lists coord serve's jobs.", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&watch, "watch", false, "refresh the list in place every --interval until interrupted")
		fs.DurationVar(&every, "interval", 2*time.Second, "time between refreshes with --watch")
	})
	if stop {
		return code
	}
	if len(pos) != 0 {
		fmt.Fprintln(env.stderr, "coord ls: takes no arguments (see --help)")
		return 2
	}
	for {
		jobs, err := x.c.List(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return 0
			}
			return x.fail(err)
		}
		if watch {
			fmt.Fprint(env.stdout, "\x1b[H\x1b[2J") // home, clear screen
		}
		if x.o.json {
			x.printJSON(jobs)
		} else {
			printJobs(env.stdout, jobs)
		}
		if !watch {
			return 0
		}
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(every):
		}
	}
}

func printJobs(w io.Writer, jobs []service.JobInfo) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTATE\tDONE\tSIZE\tDOWN\tUP\tETA\tRATIO\tPEERS")
	for _, j := range jobs {
		state := j.State
		if j.Error != "" {
			state += ": " + j.Error
		}
		eta := "-"
		if j.ETA > 0 {
			eta = time.Duration(j.ETA).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f%%\t%s\t%s/s\t%s/s\t%s\t%.2f\t%d\n", j.ID, j.Name, state, j.Progress*100,
			humanBytes(j.Size), humanBytes(int64(j.DownRate)), humanBytes(int64(j.UpRate)), eta, j.Ratio, j.Peers)
	}
	tw.Flush()
}

func runShow(ctx context.Context, env *cmdEnv, args []string) int {
	x, pos, code, stop := newClientCmd(env, "show", "ID", "Shows one of coord serve's jobs: its status, files, swarms and trackers.", args, nil)
	if stop {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprintln(env.stderr, "coord show: expected one job ID (see coord ls)")
		return 2
	}
	d, err := x.c.Get(ctx, pos[0])
	if err != nil {
		return x.fail(err)
	}
	if x.o.json {
		x.printJSON(d)
		return 0
	}
	printDetail(env.stdout, d)
	return 0
}

func printDetail(w io.Writer, d service.JobDetail) {
	fmt.Fprintf(w, "%s  %s\n", d.ID, d.Name)
	fmt.Fprintf(w, "  state     %s", d.State)
	if d.Error != "" {
		fmt.Fprintf(w, ": %s", d.Error)
	}
	if d.Waiting != "" {
		fmt.Fprintf(w, " (%s)", d.Waiting)
	}
	fmt.Fprintf(w, "\n  progress  %.1f%% of %s (%d of %d pieces)\n", d.Progress*100, humanBytes(d.Size), d.PiecesDone, d.Pieces)
	fmt.Fprintf(w, "  transfer  down %s (%s/s), up %s (%s/s), ratio %.2f, %d peers (%d seeds)\n",
		humanBytes(d.Downloaded), humanBytes(int64(d.DownRate)), humanBytes(d.Uploaded), humanBytes(int64(d.UpRate)), d.Ratio, d.Peers, d.Seeds)
	fmt.Fprintf(w, "  seeding   %s", limitsText(d.Limits))
	fmt.Fprintf(w, "; seeded %s\n  data      %s\n", time.Duration(d.Seeded).Round(time.Second), d.DataDir)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nFILE\tSIZE")
	for _, f := range d.Files {
		fmt.Fprintf(tw, "%s\t%s\n", f.Path, humanBytes(f.Length))
	}
	if len(d.Workers) > 0 {
		fmt.Fprintln(tw, "\nSWARM\tSTATE\tPEERS\tDOWN\tRECEIVED\tPIECES\tHASH FAILS")
		for _, wk := range d.Workers {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s/s\t%s\t%d\t%d\n", wk.Name, wk.State, wk.Peers, humanBytes(int64(wk.DownRate)), humanBytes(wk.Downloaded), wk.Delivered, wk.HashFails)
		}
	}
	fmt.Fprintln(tw, "\nTRACKER\tTIER\tLATENCY P50\tPEERS\tOVERDUE\tLAST ERROR")
	for _, t := range d.Trackers {
		lat := "-"
		if t.Latency != nil && t.Latency.Answers > 0 {
			lat = time.Duration(t.Latency.P50).Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\n", t.URL, t.Tier, lat, t.PeersTotal, t.Overdue, t.LastError)
	}
	tw.Flush()
}

func limitsText(l service.Limits) string {
	if !l.Seed {
		return "off"
	}
	var parts []string
	if l.Ratio > 0 {
		parts = append(parts, fmt.Sprintf("to ratio %.2f", l.Ratio))
	}
	if l.Time > 0 {
		parts = append(parts, "for "+time.Duration(l.Time).String())
	}
	if len(parts) == 0 {
		return "without limit"
	}
	return strings.Join(parts, " or ")
}

func runTrackers(ctx context.Context, env *cmdEnv, args []string) int {
	x, pos, code, stop := newClientCmd(env, "trackers", "ID", "Shows the trackers of one of coord serve's jobs: tier, announces, answer latency, peers, overdue requests and the newest error.", args, nil)
	if stop {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprintln(env.stderr, "coord trackers: expected one job ID (see coord ls)")
		return 2
	}
	d, err := x.c.Get(ctx, pos[0])
	if err != nil {
		return x.fail(err)
	}
	if x.o.json {
		x.printJSON(d.Trackers)
		return 0
	}
	printTrackers(env.stdout, d.Trackers)
	return 0
}

// trackerPeersShown is how many of a tracker's peers the table lists
// (--json gives the API's 200).
const trackerPeersShown = 8

func printTrackers(w io.Writer, ts []service.TrackerInfo) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TRACKER\tTIER\tLAST ANNOUNCE\tNEXT\tLATENCY P50/P90/MAX\tPEERS\tSEEDS/LEECH\tOVERDUE\tLAST ERROR")
	clock := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.Local().Format(time.TimeOnly)
	}
	for _, t := range ts {
		lat, swarm := "-", "-"
		if l := t.Latency; l != nil && l.Answers > 0 {
			r := func(d service.Duration) string { return time.Duration(d).Round(time.Millisecond).String() }
			lat = r(l.P50) + "/" + r(l.P90) + "/" + r(l.Max)
		}
		if t.Seeders != nil || t.Leechers != nil {
			n := func(p *int64) string {
				if p == nil {
					return "?"
				}
				return strconv.FormatInt(*p, 10)
			}
			swarm = n(t.Seeders) + "/" + n(t.Leechers)
		}
		overdue := strconv.Itoa(t.Overdue)
		if t.OverduePackets > 0 {
			overdue += fmt.Sprintf(" (%d packets)", t.OverduePackets)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", t.URL, t.Tier, clock(t.LastAnnounce), clock(t.NextAnnounce),
			lat, t.PeersTotal, swarm, overdue, t.LastError)
	}
	tw.Flush()
	for _, t := range ts {
		if len(t.Peers) == 0 {
			continue
		}
		shown := t.Peers[:min(len(t.Peers), trackerPeersShown)]
		more := ""
		if t.PeersTotal > len(shown) {
			more = fmt.Sprintf(" and %d more", t.PeersTotal-len(shown))
		}
		fmt.Fprintf(w, "\npeers of %s: %s%s\n", t.URL, strings.Join(shown, " "), more)
	}
}

func runPause(ctx context.Context, env *cmdEnv, args []string) int {
	return runEach(ctx, env, "pause", "Pauses jobs of coord serve: their trackers hear \"stopped\" and they stay stopped until resumed.", args, nil,
		func(ctx context.Context, c *service.Client, id string) (any, error) { return c.Pause(ctx, id) })
}

func runResume(ctx context.Context, env *cmdEnv, args []string) int {
	return runEach(ctx, env, "resume", "Resumes paused jobs of coord serve (and retries failed ones).", args, nil,
		func(ctx context.Context, c *service.Client, id string) (any, error) { return c.Resume(ctx, id) })
}

func runRm(ctx context.Context, env *cmdEnv, args []string) int {
	var del bool
	return runEach(ctx, env, "rm", "Removes jobs from coord serve; their data stays unless --delete-data.", args,
		func(fs *flag.FlagSet) { fs.BoolVar(&del, "delete-data", false, "delete the jobs' files too") },
		func(ctx context.Context, c *service.Client, id string) (any, error) {
			return map[string]any{"removed": id, "data_deleted": del}, c.Remove(ctx, id, del)
		})
}

// runEach applies f to every job ID given and prints the results.
func runEach(ctx context.Context, env *cmdEnv, name, summary string, args []string, extra func(*flag.FlagSet),
	f func(context.Context, *service.Client, string) (any, error)) int {
	x, pos, code, stop := newClientCmd(env, name, "ID...", summary, args, extra)
	if stop {
		return code
	}
	if len(pos) == 0 {
		fmt.Fprintf(env.stderr, "coord %s: expected one or more job IDs (see coord ls)\n", name)
		return 2
	}
	for _, id := range pos {
		res, err := f(ctx, x.c, id)
		if err != nil {
			code = x.fail(err)
			continue
		}
		switch {
		case x.o.json:
			x.printJSON(res)
		case name == "rm":
			fmt.Fprintf(env.stdout, "%s removed\n", id)
		default:
			fmt.Fprintf(env.stdout, "%s %s\n", id, res.(service.JobInfo).State)
		}
	}
	return code
}

// nodes prints coord serve's view of the cluster: each member and what it
// does for the daemon's jobs.
func (x *clientCmd) nodes(ctx context.Context) int {
	n, err := x.c.Nodes(ctx)
	if err != nil {
		return x.fail(err)
	}
	if x.o.json {
		x.printJSON(n)
		return 0
	}
	w := x.env.stdout
	if !n.Enabled {
		fmt.Fprintln(w, "coord serve runs outside a cluster (start it with --cluster-listen to give swarm nodes work)")
		return 0
	}
	if !n.Joined {
		fmt.Fprintf(w, "not joined yet: %s\n", n.JoinError)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tGOSSIP\tSLOTS\tSESSION\tJOB\tSTATE\tPIECES\tRECEIVED\tDOWN")
	for _, m := range n.Members {
		name := m.Name
		if m.Local {
			name += " (this)"
		}
		session := m.Session
		if session == "" {
			session = "-"
		}
		if len(m.Jobs) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t-\t\t\t\t\n", name, m.Role, m.Addr, m.Slots, session)
		}
		for _, j := range m.Jobs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%d\t%s\t%s/s\n", name, m.Role, m.Addr, m.Slots, session, j.ID, j.State,
				j.Delivered, humanBytes(j.Downloaded), humanBytes(int64(j.DownRate)))
		}
	}
	tw.Flush()
	return 0
}
