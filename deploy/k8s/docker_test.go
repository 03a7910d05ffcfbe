package k8s

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"flotilla/internal/testenv"
)

// dockerLab is one run of the Docker test: everything it creates is named
// with its id and removed by its cleanup.
type dockerLab struct {
	t          *testing.T
	id         string // names and the image tag
	dir        string
	net        string
	subnet     string // "10.213.N." prefix
	containers []string
	images     []string
}

func newDockerLab(t *testing.T) *dockerLab {
	t.Helper()
	testenv.Require(t, "docker", "opentracker", "aria2c", "ldd", "bash", "tar", "sha256sum")
	testenv.RequireRoot(t) // the coordinator's volume is chowned to the pods' user
	if out, err := exec.Command("docker", "info").CombinedOutput(); err != nil {
		testenv.Unavailable(t, "Docker Engine does not answer (docker info: %v: %s)", err, bytes.TrimSpace(out))
	}
	d := &dockerLab{t: t, id: fmt.Sprintf("fltest%06d", rand.IntN(1e6)), dir: t.TempDir()}
	t.Cleanup(d.cleanup)
	return d
}

// docker runs a docker command and returns its standard output; a failure
// ends the test.
func (d *dockerLab) docker(args ...string) string {
	d.t.Helper()
	out, err := d.dockerErr(args...)
	if err != nil {
		d.t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func (d *dockerLab) dockerErr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}

func (d *dockerLab) cleanup() {
	if d.t.Failed() {
		for _, c := range d.containers {
			out, _ := exec.Command("docker", "logs", "--tail", "40", c).CombinedOutput()
			d.t.Logf("docker logs %s:\n%s", c, out)
		}
	}
	for _, c := range d.containers {
		if out, err := exec.Command("docker", "rm", "-f", c).CombinedOutput(); err != nil {
			d.t.Errorf("docker rm -f %s: %v %s", c, err, out)
		}
	}
	if d.net != "" {
		if out, err := exec.Command("docker", "network", "rm", d.net).CombinedOutput(); err != nil {
			d.t.Errorf("docker network rm %s: %v %s", d.net, err, out)
		}
	}
	for _, im := range d.images {
		if out, err := exec.Command("docker", "rmi", im).CombinedOutput(); err != nil {
			d.t.Errorf("docker rmi %s: %v %s", im, err, out)
		}
	}
}

// buildImages makes Flotilla's images with scripts/build-images.sh --tar
// (the tarballs, no Docker) tagged with the lab's id, loads them with
// docker load, and builds the lab image: opentracker and aria2c with
// their libraries on an empty base.
func (d *dockerLab) buildImages() {
	d.t.Helper()
	tarDir := filepath.Join(d.dir, "images")
	cmd := exec.Command("bash", "../../scripts/build-images.sh", "--tar", tarDir, "--tag", d.id)
	if out, err := cmd.CombinedOutput(); err != nil {
		d.t.Fatalf("build-images.sh: %v\n%s", err, out)
	}
	for _, name := range []string{"coord", "swarmnode"} {
		d.images = append(d.images, "flotilla-"+name+":"+d.id)
		d.docker("load", "-i", filepath.Join(tarDir, "flotilla-"+name+".tar"))
	}
	ctxDir := filepath.Join(d.dir, "labimage")
	root := filepath.Join(ctxDir, "root")
	files := []string{"/usr/bin/opentracker", "/usr/bin/aria2c"}
	for _, bin := range files[:2] {
		out, err := exec.Command("ldd", bin).Output()
		if err != nil {
			d.t.Fatalf("ldd %s: %v", bin, err)
		}
		for _, f := range strings.Fields(string(out)) {
			if strings.HasPrefix(f, "/") {
				files = append(files, f)
			}
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f) // follows symbolic links
		if err != nil {
			d.t.Fatal(err)
		}
		dst := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			d.t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o755); err != nil {
			d.t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(root, "tmp"), 0o1777)
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM scratch\nCOPY root/ /\n"), 0o644); err != nil {
		d.t.Fatal(err)
	}
	labImage := "flotilla-testlab:" + d.id
	d.docker("build", "-q", "-t", labImage, ctxDir)
	d.images = append(d.images, labImage)
}

// network creates the lab's private network on a free 10.213.N.0/24.
func (d *dockerLab) network() {
	d.t.Helper()
	name := d.id + "-net"
	var lastErr error
	for _, n := range rand.Perm(250)[:8] {
		prefix := fmt.Sprintf("10.213.%d.", n+1)
		if _, err := d.dockerErr("network", "create", "--subnet", prefix+"0/24", name); err != nil {
			lastErr = err
			continue
		}
		d.net, d.subnet = name, prefix
		return
	}
	d.t.Fatalf("no free subnet for the lab network: %v", lastErr)
}

// start runs a detached container on the lab network at IP subnet+host.
func (d *dockerLab) start(name string, host int, runArgs []string, image string, args ...string) string {
	d.t.Helper()
	full := d.id + "-" + name
	a := []string{"run", "-d", "--name", full, "--hostname", name, "--network", d.net, "--ip", d.ip(host)}
	a = append(append(append(a, runArgs...), image), args...)
	d.containers = append(d.containers, full)
	d.docker(a...)
	return full
}

func (d *dockerLab) ip(host int) string { return fmt.Sprintf("%s%d", d.subnet, host) }

// podRun turns a container of the manifests into docker run flags and
// arguments, as the kubelet would run it: the same user, a read-only root,
// no capabilities, no privilege escalation, emptyDirs as tmpfs, the claim
// as a host directory, env from the secret and the downward API.
func (d *dockerLab) podRun(c corev1.Container, podName, podIP string, secret map[string]string, claimDir string) (runArgs, args []string) {
	d.t.Helper()
	sc := c.SecurityContext
	runArgs = []string{"--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
		"--user", fmt.Sprintf("%d:%d", *sc.RunAsUser, *sc.RunAsGroup)}
	env := map[string]string{}
	for _, e := range c.Env {
		v := e.Value
		switch {
		case e.ValueFrom == nil:
		case e.ValueFrom.SecretKeyRef != nil:
			v = secret[e.ValueFrom.SecretKeyRef.Key]
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP":
			v = podIP
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			v = podName
		default:
			d.t.Fatalf("container %s: env %s comes from where this test cannot tell", c.Name, e.Name)
		}
		env[e.Name] = v
		runArgs = append(runArgs, "-e", e.Name+"="+v)
	}
	for _, m := range c.VolumeMounts {
		if m.Name == "state" {
			runArgs = append(runArgs, "-v", claimDir+":"+m.MountPath)
			continue
		}
		runArgs = append(runArgs, "--tmpfs", fmt.Sprintf("%s:rw,uid=%d,gid=%d,size=512m", m.MountPath, *sc.RunAsUser, *sc.RunAsGroup))
	}
	for _, a := range c.Args {
		args = append(args, os.Expand(strings.NewReplacer("$(", "${", ")", "}").Replace(a), func(k string) string { return env[k] }))
	}
	return runArgs, args
}

// api calls coord serve's API at base with the token, naming the Service
// as Host, and decodes a JSON answer into out.
func api(t *testing.T, method, base, path, token string, body []byte, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "flotilla-api"
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

func httpStatus(url string) int {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// nodesView is the part of GET /api/v1/nodes the test reads.
type nodesView struct {
	Members []struct {
		Name string `json:"name"`
		Role string `json:"role"`
		Jobs []struct {
			ID        string `json:"id"`
			Delivered int    `json:"pieces_delivered"`
			Leased    int    `json:"pieces_leased"`
		} `json:"jobs"`
	} `json:"members"`
}

type jobView struct {
	ID         string  `json:"id"`
	State      string  `json:"state"`
	Progress   float64 `json:"progress"`
	PiecesDone int     `json:"pieces_done"`
	Pieces     int     `json:"pieces"`
}
