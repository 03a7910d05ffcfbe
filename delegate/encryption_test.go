package delegate

import (
	"log/slog"
	"testing"

	"flotilla/peerwire/mse"
	"flotilla/swarm/swarmtest"
)

// TestJobEncryption: a Job's encryption (the coordinator's MSE/PE policy)
// reaches the node's Job; absent, the node's own applies; an unknown one
// is rejected.
func TestJobEncryption(t *testing.T) {
	tt := swarmtest.NewTorrent(t, 100<<10, 32<<10)
	ns := &nodeSession{srv: &Server{cfg: DefaultServerConfig()}, log: slog.New(slog.DiscardHandler)}
	msg := func(enc string) *jobMsg {
		return &jobMsg{Job: 1, InfoHash: tt.InfoHash[:], Info: tt.InfoBytes, Encryption: enc}
	}
	job, reason := ns.parseJob(msg("require"))
	if reason != "" || job.Encryption == nil || *job.Encryption != mse.Require {
		t.Fatalf("require: %v %q", job.Encryption, reason)
	}
	if job, reason = ns.parseJob(msg("")); reason != "" || job.Encryption != nil {
		t.Fatalf("absent: %v %q", job.Encryption, reason)
	}
	if _, reason = ns.parseJob(msg("maybe")); reason == "" {
		t.Fatal("an unknown policy was accepted")
	}
}
