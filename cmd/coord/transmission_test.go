package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"flotilla/internal/lab"
	"flotilla/internal/testenv"
)

// Transmission refuses peers in 127.0.0.0/8 ("martians"), so these tests
// run every program in network namespaces of their own (needs root).

// netnsLab is a star of namespaces: tracker, seed and client hosts.
type netnsLab struct {
	hosts   map[string]*lab.Netns
	cl      *lab.Cleanup
	payload *lab.Payload
	torrent *lab.Torrent
	tracker *lab.Opentracker
	// requireCrypto sets transmission's "encryption" to 2 (required).
	requireCrypto bool
}

var subnetSeq = 0

func newNetnsLab(t *testing.T, size int64) *netnsLab {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.Require(t, "ip", "opentracker", "mktorrent", "transmission-cli")
	ctx := context.Background()
	cl := &lab.Cleanup{}
	t.Cleanup(cl.Run)
	subnetSeq++
	hosts, err := lab.NewStar(ctx, cl, lab.StarConfig{
		Hosts:  []string{"tracker", "seed", "client"},
		Subnet: fmt.Sprintf("10.213.%d", 10+subnetSeq),
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, err := lab.WritePayload(filepath.Join(dir, "data"), lab.PayloadSpec{Name: "payload.bin", Seed: 21, Size: size})
	if err != nil {
		t.Fatal(err)
	}
	probe, err := lab.MakeTorrent(ctx, p, 1<<18, [][]string{{"http://127.0.0.1:1/announce"}}, filepath.Join(dir, "probe.torrent"))
	if err != nil {
		t.Fatal(err)
	}
	ot, err := lab.StartOpentracker(ctx, cl, hosts["tracker"], filepath.Join(dir, "tracker"), probe.InfoHash)
	if err != nil {
		t.Fatal(err)
	}
	tor, err := lab.MakeTorrent(ctx, p, 1<<18, [][]string{{ot.HTTPAnnounce}}, filepath.Join(dir, "t.torrent"))
	if err != nil {
		t.Fatal(err)
	}
	return &netnsLab{hosts: hosts, cl: cl, payload: p, torrent: tor, tracker: ot}
}

// startTransmission runs transmission-cli on host with DHT, LPD, PEX, uTP
// and port forwarding off, downloading (or seeding) torrent (a file or a
// magnet link) into dir.
func (l *netnsLab) startTransmission(t *testing.T, host *lab.Netns, dir, torrent string) *lab.Proc {
	t.Helper()
	port, err := host.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfgDir := filepath.Join(t.TempDir(), "transmission")
	os.MkdirAll(cfgDir, 0o755)
	settings := fmt.Sprintf(`{"dht-enabled": false, "lpd-enabled": false, "pex-enabled": false,
 "port-forwarding-enabled": false, "utp-enabled": false, "blocklist-enabled": false,
 "peer-port": %d, "bind-address-ipv4": %q, "preallocation": 0, "message-level": 1, "encryption": %d}`,
		port, host.IP(), map[bool]int{false: 1, true: 2}[l.requireCrypto])
	if err := os.WriteFile(filepath.Join(cfgDir, "settings.json"), []byte(settings), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := host.Command(context.Background(), "transmission-cli", "-g", cfgDir, "-w", dir,
		"-p", strconv.Itoa(port), "-M", "-D", "-U", torrent)
	proc, err := lab.StartProc(l.cl, "transmission-"+host.Name, cmd, filepath.Join(t.TempDir(), "transmission.log"))
	if err != nil {
		t.Fatal(err)
	}
	return proc
}

// startCoordOn runs coord inside host's namespace.
func (l *netnsLab) startCoordOn(t *testing.T, host *lab.Netns, args ...string) *coordProc {
	t.Helper()
	return startCoordCmd(t, host.Command(context.Background(), coordBinary(t), noDHT(args)...))
}

// seedWithTransmission starts transmission-cli seeding the payload on the
// seed host and waits until the tracker counts it as a seeder.
func (l *netnsLab) seedWithTransmission(t *testing.T) {
	t.Helper()
	l.startTransmission(t, l.hosts["seed"], filepath.Dir(l.payload.Path), l.torrent.Path)
	testenv.WaitFor(t, time.Minute, "transmission registered as a seeder", func() bool {
		s, err := l.tracker.ScrapeInfo(context.Background(), l.torrent.InfoHash)
		return err == nil && s.Complete >= 1
	})
}

// downloadWithCoord runs coord download of torrent (a file or a magnet
// link) on the client host with the flags extra, and checks its copy.
func (l *netnsLab) downloadWithCoord(t *testing.T, torrent string, extra ...string) {
	t.Helper()
	out := t.TempDir()
	client := l.hosts["client"]
	args := append([]string{"download", torrent, "--out", out, "--listen", client.IP() + ":6881"}, extra...)
	p := l.startCoordOn(t, client, args...)
	if code := p.wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out.String())
	}
	if err := l.payload.Verify(out); err != nil {
		t.Fatal(err)
	}
}

// seedWithCoord starts coord seed on the seed host with the flags extra
// and waits until the tracker counts it as a seeder.
func (l *netnsLab) seedWithCoord(t *testing.T, extra ...string) *coordProc {
	t.Helper()
	seed := l.hosts["seed"]
	args := append([]string{"seed", l.torrent.Path, "--data", filepath.Dir(l.payload.Path),
		"--listen", seed.IP() + ":6881", "--progress", "none"}, extra...)
	s := l.startCoordOn(t, seed, args...)
	testenv.WaitFor(t, 30*time.Second, "coord seed registered as a seeder", func() bool {
		sc, err := l.tracker.ScrapeInfo(context.Background(), l.torrent.InfoHash)
		return err == nil && sc.Complete >= 1
	})
	return s
}

// downloadWithTransmission runs transmission-cli for torrent (a file or a
// magnet link) on the client host until its copy is complete and
// identical, and checks that the seeder, coord seed, is still running.
func (l *netnsLab) downloadWithTransmission(t *testing.T, torrent string, seeder *coordProc) {
	t.Helper()
	out := t.TempDir()
	tr := l.startTransmission(t, l.hosts["client"], out, torrent)
	testenv.WaitFor(t, 3*time.Minute, "transmission's copy complete and identical", func() bool {
		if tr.Exited() {
			t.Fatalf("transmission-cli exited: %s", tr.Tail(2000))
		}
		return l.payload.Complete(out) && l.payload.Verify(out) == nil
	})
	select {
	case <-seeder.done:
		t.Fatalf("coord seed exited:\n%s", seeder.out.String())
	default:
	}
}

func TestDownloadFromTransmissionSeeder(t *testing.T) {
	l := newNetnsLab(t, 16<<20+4321)
	l.seedWithTransmission(t)
	l.downloadWithCoord(t, l.torrent.Path, "--progress", "log")
}

func TestTransmissionDownloadsFromCoordSeed(t *testing.T) {
	l := newNetnsLab(t, 16<<20+4321)
	l.downloadWithTransmission(t, l.torrent.Path, l.seedWithCoord(t))
}
