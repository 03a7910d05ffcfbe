package k8s

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flotilla/internal/lab"
	"flotilla/internal/testenv"
)

// TestDockerSwarm runs the images as the manifests run them (their args,
// env, user and read-only root; emptyDirs as tmpfs, the claim as a host
// directory) in Docker: a coordinator, 3 swarm nodes, opentracker and 3
// upload-capped aria2c seeders on a private network. A torrent added
// through the API downloads byte-identical with pieces from every node;
// one node, cut off the network mid-download by `docker network
// disconnect`, has its lease returned to the pool and the download
// completes without it.
func TestDockerSwarm(t *testing.T) {
	d := newDockerLab(t)
	d.buildImages()
	d.network()
	m := loadBase(t, nil)
	coordC := m.statefulSets[0].Spec.Template.Spec.Containers[0]
	nodeC := m.deployments[0].Spec.Template.Spec.Containers[0]
	secret := d.secret()
	labImage := "flotilla-testlab:" + d.id

	// The payload, its torrent and the tracker's whitelist.
	p, err := lab.WritePayload(filepath.Join(d.dir, "payload"), lab.PayloadSpec{Name: "flotilla-docker.bin", Seed: 12, Size: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	tor, err := lab.MakeTorrent(context.Background(), p, 256<<10, [][]string{{"http://" + d.ip(2) + ":6969/announce"}}, filepath.Join(d.dir, "x.torrent"))
	if err != nil {
		t.Fatal(err)
	}
	otDir := filepath.Join(d.dir, "ot")
	os.MkdirAll(otDir, 0o755)
	if err := os.WriteFile(filepath.Join(otDir, "whitelist"), []byte(hex.EncodeToString(tor.InfoHash[:])+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.start("tracker", 2, []string{"-v", otDir + ":/ot", "--workdir", "/ot"}, labImage,
		"/usr/bin/opentracker", "-p", "6969", "-P", "6969", "-d", "/ot", "-w", "whitelist")
	raw, err := os.ReadFile(tor.Path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		sd := filepath.Join(d.dir, fmt.Sprintf("seed%d", i))
		os.MkdirAll(sd, 0o755)
		if err := os.Link(p.Path, filepath.Join(sd, p.Name)); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sd, "x.torrent"), raw, 0o644); err != nil {
			t.Fatal(err)
		}
		// Capped, so that the download lasts long enough to cut a node off.
		args := append(lab.Aria2SeedArgs(d.ip(3+i), 6881, "/seed", "/seed/x.torrent"), "--max-overall-upload-limit=700K")
		d.start(fmt.Sprintf("seeder%d", i), 3+i, []string{"-v", sd + ":/seed"}, labImage, append([]string{"/usr/bin/aria2c"}, args...)...)
	}

	// The coordinator, reachable as the Services' names, and the nodes.
	claim := filepath.Join(d.dir, "claim")
	os.MkdirAll(claim, 0o755)
	if err := os.Chown(claim, int(*coordC.SecurityContext.RunAsUser), int(*coordC.SecurityContext.RunAsGroup)); err != nil {
		t.Fatal(err)
	}
	runArgs, args := d.podRun(coordC, "flotilla-coord-0", d.ip(10), secret, claim)
	runArgs = append(runArgs, "--network-alias", "flotilla-gossip", "--network-alias", "flotilla-api")
	coordName := d.start("coord", 10, runArgs, "flotilla-coord:"+d.id, append(args, "--seed=false")...)
	for i := 1; i <= 3; i++ {
		runArgs, args := d.podRun(nodeC, fmt.Sprintf("node%d", i), d.ip(10+i), secret, "")
		d.start(fmt.Sprintf("node%d", i), 10+i, runArgs, "flotilla-swarmnode:"+d.id, args...)
	}
	base := "http://" + d.ip(10) + ":8080"
	token := strings.TrimSpace(secret["api.token"])
	testenv.WaitFor(t, time.Minute, "the coordinator's /readyz", func() bool { return httpStatus(base+"/readyz") == 200 })
	for i := 1; i <= 3; i++ {
		testenv.WaitFor(t, time.Minute, fmt.Sprintf("node%d's /readyz", i), func() bool {
			return httpStatus(fmt.Sprintf("http://%s:8081/readyz", d.ip(10+i))) == 200
		})
	}
	testenv.WaitFor(t, time.Minute, "the coordinator to see 3 swarm nodes", func() bool {
		var nv nodesView
		api(t, "GET", base, "/api/v1/nodes", token, nil, &nv)
		n := 0
		for _, m := range nv.Members {
			if m.Role == "swarmnode" {
				n++
			}
		}
		return n == 3
	})

	var job jobView
	if code := api(t, "POST", base, "/api/v1/torrents", token, raw, &job); code != 201 {
		t.Fatalf("adding the torrent: status %d", code)
	}
	delivered := map[string]int{}
	victim := ""
	testenv.WaitFor(t, 3*time.Minute, "every node to deliver pieces while the download runs", func() bool {
		var nv nodesView
		api(t, "GET", base, "/api/v1/nodes", token, nil, &nv)
		leased := map[string]int{}
		for _, m := range nv.Members {
			for _, j := range m.Jobs {
				if m.Role == "swarmnode" && j.ID == job.ID {
					delivered[m.Name] = max(delivered[m.Name], j.Delivered)
					leased[m.Name] = j.Leased
				}
			}
		}
		var j jobView
		api(t, "GET", base, "/api/v1/torrents/"+job.ID, token, nil, &j)
		if j.State == "done" || j.State == "failed" {
			t.Fatalf("the download ended (%s) before every node had delivered a piece and held a lease: %v", j.State, delivered)
		}
		if len(delivered) < 3 || min(delivered["node1"], delivered["node2"], delivered["node3"]) == 0 {
			return false
		}
		for name, l := range leased {
			if l > 0 {
				victim = name
				return true
			}
		}
		return false
	})
	t.Logf("pieces delivered per node: %v; cutting %s off the network", delivered, victim)
	d.docker("network", "disconnect", d.net, d.id+"-"+victim)
	testenv.WaitFor(t, time.Minute, "the coordinator to return "+victim+"'s lease to the pool", func() bool {
		out, _ := exec.Command("docker", "logs", coordName).CombinedOutput()
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "its lease returns to the pool") && strings.Contains(l, `"node":"`+victim+`"`) {
				return true
			}
		}
		return false
	})
	testenv.WaitFor(t, 4*time.Minute, "the download to complete without "+victim, func() bool {
		var j jobView
		api(t, "GET", base, "/api/v1/torrents/"+job.ID, token, nil, &j)
		if j.State == "failed" {
			t.Fatalf("the download failed: %+v", j)
		}
		return j.State == "done"
	})
	if err := p.Verify(filepath.Join(claim, "data", job.ID)); err != nil {
		t.Fatal(err)
	}
}

// secret makes the four values of flotilla-keys as docs/kubernetes.md
// does, with coord keygen run from the coordinator's image. Each value is
// the whole file, final newline included, as `kubectl create secret
// --from-file` stores it.
func (d *dockerLab) secret() map[string]string {
	d.t.Helper()
	img := "flotilla-coord:" + d.id
	keys := filepath.Join(d.dir, "keys")
	os.MkdirAll(keys, 0o777)
	os.Chmod(keys, 0o777)
	s := map[string]string{
		"cluster.key":     d.docker("run", "--rm", "--read-only", img, "keygen"),
		"coordinator.pub": d.docker("run", "--rm", "--read-only", "-v", keys+":/keys", img, "keygen", "--coordinator", "/keys/coordinator.key"),
	}
	priv, err := os.ReadFile(filepath.Join(keys, "coordinator.key"))
	if err != nil {
		d.t.Fatal(err)
	}
	s["coordinator.key"] = string(priv)
	tok := make([]byte, 24)
	rand.Read(tok)
	s["api.token"] = hex.EncodeToString(tok) + "\n"
	return s
}
