package k8stest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flotilla/internal/lab"
	"flotilla/internal/testenv"
	"flotilla/service"
)

// TestCluster is deploy/k8s/ on a real single-node Kubernetes (see the
// package comment): the coordinator and three swarm nodes come up, a
// download through the API is byte-identical with pieces from every node,
// and downloads survive `kubectl scale`, a node pod's deletion, the
// coordinator pod's deletion and a rolling update of the nodes; a bad
// manifest is refused. It logs the figures issue 12 asks for.
func TestCluster(t *testing.T) {
	if os.Getenv("FLOTILLA_K8S_TEST") != "1" {
		t.Skip("the real-cluster test runs in its own step: scripts/k8s/test.sh (CI runs it from scripts/test.sh)")
	}
	testenv.RequireRoot(t)
	testenv.Require(t, "etcd", "containerd", "runc", "ctr", "iptables", "conntrack", "openssl", "gcc")
	began := time.Now()
	fig := &figures{}
	t.Cleanup(func() { reportFigures(t, fig, began) })

	c := startCluster(t, fig)
	images := t.TempDir()
	c.script(20*time.Minute, nil, "scripts/build-images.sh", "--tar", images)
	c.importImage(filepath.Join(images, "flotilla-coord.tar"))
	c.importImage(filepath.Join(images, "flotilla-swarmnode.tar"))

	// Payloads large and seeders slow enough (2 MB/s for each torrent)
	// that every step happens mid-download.
	const mib = 1 << 20
	ds := startSwarms(t, c.nodeIP, 1<<18, "1M",
		lab.PayloadSpec{Name: "first.bin", Seed: 101, Size: 48*mib + 17},
		// The scale step's new nodes get a piece only once a seeder
		// unchokes them, which the incumbents' faster downloads put off
		// to an optimistic unchoke (every 10-30 s): 96 s of download
		// gives them several rounds (at 64 s, one of the two new nodes
		// once ended with no piece).
		lab.PayloadSpec{Name: "scale.bin", Seed: 103, Size: 192 * mib},
		lab.PayloadSpec{Name: "nodekill.bin", Seed: 107, Size: 64*mib + 3},
		lab.PayloadSpec{Name: "coordkill.bin", Seed: 109, Size: 64 * mib},
		lab.PayloadSpec{Name: "rolling.bin", Seed: 113, Size: 80*mib + 5},
	)

	applied := time.Now()
	d := deploy(t, c)
	coord := c.waitReady(namespace, coordLabels, 1, 5*time.Minute)
	nodes := c.waitReady(namespace, nodeLabels, 3, 5*time.Minute)
	fig.add("apply to coordinator and 3 nodes Ready", time.Since(applied))
	fig.add("coordinator pod start to Ready", coord[0].startToReady())
	for _, n := range nodes {
		fig.add("node pod start to Ready ("+n.Metadata.Name+")", n.startToReady())
	}
	api := apiClient(c.serviceIP(namespace, apiService), 8080, d.token)

	t.Run("DownloadThroughService", func(t *testing.T) { stepDownload(t, c, d, api, ds[0], nodes) })
	t.Run("ScaleMidDownload", func(t *testing.T) { stepScale(t, c, d, api, ds[1], fig) })
	c.recordMemory(fig, namespace, "5 nodes")
	t.Run("NodePodDeleted", func(t *testing.T) { stepNodeKill(t, c, d, api, ds[2], fig) })
	t.Run("CoordinatorPodDeleted", func(t *testing.T) { stepCoordKill(t, c, d, api, ds[3], fig) })
	t.Run("RollingUpdate", func(t *testing.T) { stepRolling(t, c, d, api, ds[4], fig) })
	t.Run("BadManifestRefused", func(t *testing.T) { stepBadManifest(t, c) })
	c.recordMemory(fig, namespace, "at the end")
}

// reportFigures logs the measurements and writes them to the test's
// artifact directory (go test -artifacts keeps it).
func reportFigures(t *testing.T, fig *figures, began time.Time) {
	fig.add("whole cluster test", time.Since(began))
	t.Logf("figures:\n%s", fig)
	if err := os.WriteFile(filepath.Join(t.ArtifactDir(), "figures.txt"), []byte(fig.String()+"\n"), 0o644); err != nil {
		t.Error(err)
	}
}

// serviceIP is a Service's ClusterIP.
func (c *cluster) serviceIP(ns, name string) string {
	c.t.Helper()
	ip := strings.TrimSpace(c.must("-n", ns, "get", "service", name, "-o", "jsonpath={.spec.clusterIP}"))
	if ip == "" || ip == "None" {
		c.t.Fatalf("service %s/%s has no ClusterIP", ns, name)
	}
	return ip
}

// verify checks the completed job's files against the payload, read from
// the coordinator's hostPath volume.
func verify(t *testing.T, d *deployed, w *watch, dl *download) {
	t.Helper()
	if err := dl.payload.Verify(d.hostPath(w.last.DataDir)); err != nil {
		t.Fatalf("job %s is not byte-identical: %v", w.id, err)
	}
}

func start(t *testing.T, api *service.Client, dl *download) *watch {
	t.Helper()
	job := addTorrent(t, api, dl.body)
	return newWatch(t, api, job.ID)
}

// stepDownload: a torrent added through the Service downloads
// byte-identical, with pieces delivered by every swarm node.
func stepDownload(t *testing.T, c *cluster, d *deployed, api *service.Client, dl *download, nodes []pod) {
	w := start(t, api, dl)
	w.complete(10 * time.Minute)
	verify(t, d, w, dl)
	for _, n := range nodes {
		got := 0
		for name, deliv := range w.maxDeliv {
			if podOf(name) == n.Metadata.Name {
				got += deliv
			}
		}
		if got == 0 {
			t.Errorf("node pod %s delivered no piece (workers seen: %v)", n.Metadata.Name, w.maxDeliv)
		}
	}
}

// stepScale: `kubectl scale` to 5 nodes mid-download; the new nodes get work.
func stepScale(t *testing.T, c *cluster, d *deployed, api *service.Client, dl *download, fig *figures) {
	old := map[string]bool{}
	pods, err := c.pods(namespace, nodeLabels)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		old[p.Metadata.Name] = true
	}
	w := start(t, api, dl)
	w.atFraction(0.05)
	scaled := time.Now()
	c.must("-n", namespace, "scale", "deployment/"+nodeDeploy, "--replicas=5")
	newWork := func() []string {
		var got []string
		for name, at := range w.first {
			if !old[podOf(name)] && !at.IsZero() {
				got = append(got, name)
			}
		}
		return got
	}
	w.until(5*time.Minute, "both new nodes to deliver pieces, or the download to end", func(j service.JobDetail) bool {
		return len(newWork()) >= 2 || j.State == "seeding" || j.State == "done" || j.State == "failed"
	})
	if len(newWork()) < 2 {
		t.Fatalf("the job ended %s with pieces from %d new node(s) of 2; pieces delivered by node: %v", w.last.State, len(newWork()), w.maxDeliv)
	}
	for _, name := range newWork() {
		fig.add("kubectl scale to first piece of new node "+podOf(name), w.first[name].Sub(scaled))
	}
	for _, p := range c.waitReady(namespace, nodeLabels, 5, 5*time.Minute) {
		if !old[p.Metadata.Name] {
			fig.add("node pod start to Ready after scale ("+p.Metadata.Name+")", p.startToReady())
		}
	}
	w.complete(10 * time.Minute)
	verify(t, d, w, dl)
}

// stepNodeKill: deleting a node pod mid-download: it is replaced, its
// lease reassigned, the result byte-identical.
func stepNodeKill(t *testing.T, c *cluster, d *deployed, api *service.Client, dl *download, fig *figures) {
	w := start(t, api, dl)
	w.atFraction(0.15)
	var victim string
	w.until(time.Minute, "a node holding a lease", func(j service.JobDetail) bool {
		for name, wk := range nodeWorkers(j) {
			if wk.State == "active" && wk.Leased > 0 {
				victim = name
				return true
			}
		}
		return false
	})
	deleted := time.Now()
	c.must("-n", namespace, "delete", "pod", podOf(victim), "--wait=false")
	w.until(3*time.Minute, "the deleted node's lease to be reassigned", func(j service.JobDetail) bool {
		wk, ok := nodeWorkers(j)[victim]
		return !ok || wk.State != "active" || wk.Leased == 0
	})
	fig.add("node pod deletion to its lease reassigned", time.Since(deleted))
	pods := c.waitReady(namespace, nodeLabels, 5, 5*time.Minute)
	for _, p := range pods {
		if p.Metadata.Name == podOf(victim) {
			t.Errorf("deleted pod %s is still listed Ready", p.Metadata.Name)
		}
	}
	w.complete(10 * time.Minute)
	verify(t, d, w, dl)
}

// stepCoordKill: deleting the coordinator pod mid-download: the
// StatefulSet brings it back and the download resumes from its volume,
// nothing verified fetched again.
func stepCoordKill(t *testing.T, c *cluster, d *deployed, api *service.Client, dl *download, fig *figures) {
	w := start(t, api, dl)
	w.atFraction(0.25)
	before := w.last.PiecesDone
	record := lab.CompletionRecordPath(d.hostPath(w.last.DataDir), dl.torrent.InfoHash)
	deleted := time.Now()
	// --wait: back once the old pod is gone (coord serve closes its jobs on
	// SIGTERM) and before the new one can have written anything.
	c.must("-n", namespace, "delete", "pod", coordSts+"-0", "--wait=true")
	rec, err := lab.ReadCompletionRecord(record)
	if err != nil {
		t.Fatalf("the stopped coordinator's completion record: %v", err)
	}
	kept := rec.Count()
	if kept < before {
		t.Errorf("the stopped coordinator recorded %d verified pieces, the API showed %d before the deletion: verified pieces were lost", kept, before)
	}
	coord := c.waitReady(namespace, coordLabels, 1, 5*time.Minute)
	fig.add("coordinator pod deletion to new pod Ready", time.Since(deleted))
	fig.add("coordinator pod start to Ready (restart)", coord[0].startToReady())
	w.until(3*time.Minute, "the job to run again", func(j service.JobDetail) bool {
		return j.State == "downloading" || j.State == "seeding" || j.State == "done"
	})
	// Every worker's deliveries in the new run (the counters are the run's).
	w.runDeliv = map[string]int{}
	w.complete(10 * time.Minute)
	verify(t, d, w, dl)
	fetched := sumValues(w.runDeliv)
	if missing := w.last.Pieces - kept; fetched > missing {
		t.Errorf("the restarted job accepted %d pieces but only %d were missing from its record: verified pieces were fetched again", fetched, missing)
	}
	fig.addf("coordinator restart: %d of %d pieces verified at the deletion, %d recorded at the stop; the new run accepted %d",
		before, w.last.Pieces, kept, fetched)
}

// stepRolling: a rolling update of the node Deployment (an annotation
// changed) during a download; the download never fails.
func stepRolling(t *testing.T, c *cluster, d *deployed, api *service.Client, dl *download, fig *figures) {
	w := start(t, api, dl)
	w.atFraction(0.10)
	rolled := time.Now()
	c.must("-n", namespace, "patch", "deployment", nodeDeploy, "-p",
		`{"spec":{"template":{"metadata":{"annotations":{"flotilla.test/rollout":"`+rolled.Format("150405")+`"}}}}}`)
	done := make(chan error, 1)
	go func() {
		_, err := c.kubectl("-n", namespace, "rollout", "status", "deployment/"+nodeDeploy, "--timeout=8m")
		done <- err
	}()
	w.complete(10 * time.Minute)
	verify(t, d, w, dl)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	fig.add("rolling update of 5 nodes (patch to rollout complete)", time.Since(rolled))
}

// stepBadManifest: the API server refuses a manifest it cannot accept.
func stepBadManifest(t *testing.T, c *cluster) {
	bad := map[string]struct{ manifest, want string }{
		"selector not matching the labels": {`apiVersion: apps/v1
kind: Deployment
metadata: {name: bad-selector, namespace: ` + namespace + `}
spec:
  replicas: 1
  selector: {matchLabels: {app: a}}
  template:
    metadata: {labels: {app: b}}
    spec:
      containers: [{name: c, image: flotilla-swarmnode:latest}]
`, "selector` does not match template `labels`"},
		"unknown field": {`apiVersion: v1
kind: Service
metadata: {name: bad-field, namespace: ` + namespace + `}
spec:
  ports: [{port: 80, targetPortt: 80}]
`, `unknown field "spec.ports[0].targetPortt"`},
	}
	for name, b := range bad {
		_, err := c.kubectlIn([]byte(b.manifest), "apply", "--validate=strict", "-f", "-")
		if err == nil {
			t.Errorf("%s: the API server accepted it", name)
			continue
		}
		if !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: refused, but not for the reason expected (%q): %v", name, b.want, err)
		}
	}
}
