package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"flotilla/metainfo"
	"flotilla/tracker"
)

// announceRow is one tracker's line in the report (and its JSON form).
type announceRow struct {
	URL        string  `json:"url"`
	Tier       int     `json:"tier"`
	Protocol   string  `json:"protocol"`
	OK         bool    `json:"ok"`
	Peers      int     `json:"peers"`
	Seeders    int64   `json:"seeders"`  // -1: the tracker did not say
	Leechers   int64   `json:"leechers"` // -1: the tracker did not say
	Interval   float64 `json:"interval_seconds"`
	Warning    string  `json:"warning,omitempty"`
	Error      string  `json:"error,omitempty"`
	TookMS     float64 `json:"took_ms"`
	Scraped    bool    `json:"scraped"`
	Complete   int64   `json:"scrape_complete,omitempty"`
	Download   int64   `json:"scrape_downloaded,omitempty"`
	Incomplete int64   `json:"scrape_incomplete,omitempty"`
	StopError  string  `json:"stop_error,omitempty"`
}

func runAnnounce(ctx context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet("announce", "TORRENT",
		"Announces \"started\" to every tracker of TORRENT (all tiers at once, each in its own\n"+
			"pipeline), scrapes those that support it, then announces \"stopped\". Prints one line per\n"+
			"tracker: protocol, peers, seeders, leechers and interval it answered, or its error, and\n"+
			"how long it took. Exits 0 if any tracker answered, 1 if none did, 2 on bad usage.",
		env)
	asJSON := fs.Bool("json", false, "print the report as a JSON array instead of a table")
	timeout := fs.Duration("timeout", 20*time.Second, "give up on trackers that have not answered after this long")
	port := fs.Uint("port", 6881, "the BitTorrent port to announce (nothing listens on it during this check)")
	numWant := fs.Int("numwant", 50, "how many peers to ask each tracker for")
	udpRetry := fs.Duration("udp-retry", 5*time.Second, "UDP trackers: wait this long for the first answer, doubling per retransmission (BEP 15 uses 15s)")
	verbose := fs.Bool("v", false, "log each tracker exchange to stderr")
	pos, err := fs.parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintln(env.stderr, "coord announce: expected exactly one TORRENT argument (see --help)")
		return 2
	}
	if *port == 0 || *port > 65535 {
		failf(env.stderr, "announce", "give a port from 1 to 65535", "--port %d is not a TCP port", *port)
		return 2
	}
	if *timeout <= 0 || *udpRetry <= 0 {
		failf(env.stderr, "announce", "give durations such as 20s", "--timeout and --udp-retry must be positive")
		return 2
	}
	t := loadTorrent(env.stderr, "announce", pos[0])
	if t == nil {
		return 1
	}
	if len(t.Tiers()) == 0 {
		return failf(env.stderr, "announce", "there is nothing to ask; `coord download --peer HOST:PORT` can still fetch it from peers you know",
			"%s lists no trackers", pos[0])
	}

	cfg := tracker.DefaultConfig()
	cfg.UDPRetryBase = *udpRetry
	cfg.HTTPTimeout = *timeout
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	client, err := tracker.New(cfg)
	if err != nil {
		return failErr(env.stderr, "announce", "trackers", err)
	}
	defer client.Close()

	params := tracker.AnnounceParams{
		PeerID:  tracker.NewPeerID(),
		Port:    uint16(*port),
		Key:     tracker.NewKey(),
		NumWant: *numWant,
		Left:    t.Info.Length,
	}
	pctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	return reportAnnounce(ctx, env, t, client.Probe(pctx, t, params), *asJSON)
}

// reportAnnounce prints what each tracker answered, as a table or as JSON,
// and returns the exit status: 0 if any tracker answered.
func reportAnnounce(ctx context.Context, env *cmdEnv, t *metainfo.Torrent, results []tracker.ProbeResult, asJSON bool) int {

	rows := make([]announceRow, 0, len(results))
	answered := 0
	for _, r := range results {
		row := toRow(r)
		if row.OK {
			answered++
		}
		rows = append(rows, row)
	}
	if asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rows); err != nil {
			return failf(env.stderr, "announce", "check where standard output goes", "writing the report: %v", err)
		}
	} else {
		printAnnounceTable(env.stdout, t, rows)
	}
	if ctx.Err() != nil {
		fmt.Fprintln(env.stderr, "coord announce: interrupted; the report above lists the trackers that answered in time")
		return 1
	}
	if answered == 0 {
		return failf(env.stderr, "announce", "check the network and the tracker URLs, or try again later (trackers come and go)",
			"none of %d trackers answered (%s)", len(rows), firstError(rows))
	}
	return 0
}

// shortError is the row's error without the "proto URL: " prefix the
// tracker package puts on it (the URL is printed beside it).
func (r announceRow) shortError() string {
	return strings.TrimPrefix(strings.TrimPrefix(r.Error, r.Protocol+" "), r.URL+": ")
}

func toRow(r tracker.ProbeResult) announceRow {
	row := announceRow{URL: r.URL, Tier: r.Tier, Protocol: r.Protocol, Seeders: -1, Leechers: -1,
		TookMS: float64(r.Took.Microseconds()) / 1000}
	if r.Err != nil {
		row.Error = r.Err.Error()
	} else if r.Response != nil {
		row.OK = true
		row.Peers = len(r.Response.Peers)
		row.Seeders, row.Leechers = r.Response.Seeders, r.Response.Leechers
		row.Interval = r.Response.Interval.Seconds()
		row.Warning = r.Response.Warning
	}
	if r.Scrape != nil {
		row.Scraped = true
		row.Complete, row.Download, row.Incomplete = r.Scrape.Seeders, r.Scrape.Completed, r.Scrape.Leechers
	}
	if r.StopErr != nil {
		row.StopError = r.StopErr.Error()
	}
	return row
}

func printAnnounceTable(w io.Writer, t *metainfo.Torrent, rows []announceRow) {
	fmt.Fprintf(w, "%s  info-hash %x  %d trackers in %d tiers\n\n", t.Info.Name, t.InfoHash, len(rows), len(t.Tiers()))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIER\tPROTO\tTRACKER\tRESULT\tTOOK")
	for _, r := range rows {
		result := ""
		if r.OK {
			result = fmt.Sprintf("%d peers, %s seeders, %s leechers, interval %s",
				r.Peers, count(r.Seeders), count(r.Leechers), time.Duration(r.Interval*float64(time.Second)))
			if r.Warning != "" {
				result += "; warning: " + r.Warning
			}
			if r.Scraped {
				result += fmt.Sprintf("; scrape: %s seeders, %s leechers, %s completed",
					count(r.Complete), count(r.Incomplete), count(r.Download))
			}
		} else {
			result = "error: " + oneLine(r.shortError())
		}
		proto := r.Protocol
		if proto == "" {
			proto = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", r.Tier, proto, r.URL, result,
			time.Duration(r.TookMS*float64(time.Millisecond)).Round(100*time.Microsecond))
	}
	tw.Flush()
}

func count(n int64) string {
	if n < 0 {
		return "?"
	}
	return fmt.Sprint(n)
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func firstError(rows []announceRow) string {
	for _, r := range rows {
		if r.Error != "" {
			return r.URL + ": " + oneLine(r.shortError())
		}
	}
	return "no answer"
}
