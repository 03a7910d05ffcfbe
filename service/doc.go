// Package service is `coord serve`: a long-lived daemon that takes many
// torrents over time, keeps each one's state on disk so that a restart (or
// kill -9) resumes it, and answers an HTTP API (http.go, documented in
// docs/api.md).
//
// # What owns what
//
// A Service owns one engine (a coordinator.Coordinator: the peer listener,
// the tracker client, the watchdog and the cluster) and the job registry.
// One goroutine, Service.run, owns the registry: every job's record, its
// runtime state and the state file. Other goroutines (HTTP handlers) reach
// it only by sending a function to run (Service.do) and get snapshots
// (JobInfo, JobDetail) back by value.
//
// Slow work never runs on the loop: opening a job (its store may hash the
// data already on disk) and starting it, and closing it (its trackers hear
// "stopped", its store flushes), run on goroutines of their own that
// report back to the loop. While one is in flight the job is busy and the
// loop waits for the report before acting on it again.
//
// # Desired state
//
// Commands (pause, resume, remove, set limits) change what a job's record
// wants; reconcile, run by the loop after every change and every report,
// starts what should run and is not running, and closes what runs and
// should not: a download that is complete and past its seed limit, a
// paused or removed job, a failed one. Downloads wait in the queue for one
// of MaxActive slots, oldest first; seeding takes no slot.
//
// # State on disk
//
// Under Config.StateDir: torrents/<id>.torrent (the torrent's bytes, as
// added) and jobs.json (every job's record). Both are written atomically:
// a temporary file, fsync, rename, fsync of the directory. A job's data is
// under Config.DataDir/<id>/, where <id> is the first 12 hex digits of
// its info-hash: no request names a path, and the torrent's own file names
// are checked by package metainfo (no "..", no separators).
//
// # Many jobs
//
// Every job runs on the one coordinator: it shares the peer listener
// (incoming connections are routed by info-hash), the tracker client, the
// watchdog and the cluster, so a swarm node can hold leases of several of
// the daemon's torrents at once.
package service
