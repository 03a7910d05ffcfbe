// Package tracker talks to BitTorrent trackers for many torrents at once.
//
// # Shape
//
// A Client holds what every torrent shares: the UDP coordinator (one socket
// per address family), the HTTP client and the watchdog. Client.AddTorrent
// returns an Announcer, the session of one torrent with its trackers, which
// owns one pipeline per tracker URL (DESIGN point 1). Client.Probe is the
// one-shot "started, scrape, stopped" round behind `coord announce`.
//
//   - A pipeline is one goroutine with its own connection state (UDP
//     connection id, HTTP tracker id, interval, back-off, peer list). It
//     never blocks on I/O: UDP datagrams go through the coordinator, HTTP
//     requests and host lookups run on short-lived helper goroutines, and
//     every answer comes back through the pipeline's inbox to be handled on
//     the pipeline's goroutine (DESIGN point 4). It parks on that one
//     channel; its single timer (time.AfterFunc) and everyone else's
//     requests arrive as wish flags plus a non-blocking nudge (DESIGN
//     point 5), so one slow tracker never holds up another pipeline, the
//     Announcer, or the caller. The pipeline decides when to announce or
//     scrape; its one request in flight (type request) carries out the
//     HTTP or BEP 15 exchange and hands the result back (pipeline.finish).
//   - The UDP coordinator owns the sockets. Pipelines register a waiter (a
//     struct of funcs, DESIGN point 7) under a random 32-bit transaction id
//     and state the wish to send; the writer goroutine sends later and the
//     reader goroutines route replies by transaction id (and source
//     address) to the waiter. Unknown ids, foreign sources and runts are
//     counted and ignored.
//   - Every request is a watchdog packet (DESIGN point 3): KindConnect,
//     KindAnnounce, KindScrape with Config.RequestDeadline, fulfilled when
//     the tracker answers (Update.Took is the watchdog's measurement). The
//     next regular announce is a KindSchedule IssueAt entry. A tracker that
//     never answers raises a watchdog alert while the pipeline keeps
//     retransmitting on the BEP 15 schedule (UDPRetryBase·2^n, n ≤
//     UDPMaxRetries).
//   - The Announcer applies BEP 12 (tiers tried in order, shuffled within a
//     tier, the tracker that answered promoted to the front of its tier,
//     fallback on failure; Config.AllTiers for one tracker per tier), sends
//     started / completed / stopped, re-announces on the tracker's interval
//     (never below its min interval, also for MorePeers) and backs off
//     exponentially with jitter after failures.
//   - Results arrive as Update values on Announcer.Updates (drop-oldest when
//     the consumer lags; never blocking a pipeline). Announcer.WatchPeers
//     subscribes to a tracker's peer list (DESIGN point 11): deduplicated,
//     freshest first, expiring after PeerTTLFactor intervals, bounded.
//
// The wire formats live in internal/wire (both directions, fuzzed); the
// fake trackers of package trackertest use them too.
//
// # Scale
//
// BenchmarkPipelines holds 10,000 pipelines (1,000 torrents × 10 UDP
// trackers) against in-process UDP trackers and reports B/pipeline,
// goroutines/pipeline and sustained announces/s:
//
//	go test -run '^$' -bench BenchmarkPipelines -benchtime 200000x ./tracker/
//
// What one machine measured is in the README's Benchmarks section (figures
// in comments go stale).
package tracker
