package k8s

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var (
	envOnce sync.Once
	envVal  ruleEnv
	envErr  error
)

// testEnv reads the documented Secret from docs/kubernetes.md and the
// flags of coord serve and swarmnode from the --help of binaries built
// from this tree.
func testEnv(t *testing.T) ruleEnv {
	t.Helper()
	envOnce.Do(func() { envVal, envErr = makeEnv() })
	if envErr != nil {
		t.Fatal(envErr)
	}
	return envVal
}

func makeEnv() (ruleEnv, error) {
	var env ruleEnv
	doc, err := os.ReadFile("../../docs/kubernetes.md")
	if err != nil {
		return env, err
	}
	if env.secretName, env.secretKeys, err = secretKeys(doc); err != nil {
		return env, err
	}
	dir, err := os.MkdirTemp("", "k8s-flags-")
	if err != nil {
		return env, err
	}
	defer os.RemoveAll(dir)
	build := exec.Command("go", "build", "-o", dir+"/", "flotilla/cmd/coord", "flotilla/cmd/swarmnode")
	if out, err := build.CombinedOutput(); err != nil {
		return env, fmt.Errorf("go build: %v\n%s", err, out)
	}
	env.flags = map[string]map[string]bool{}
	flagRE := regexp.MustCompile(`(?m)^  --([a-z0-9-]+)`)
	for prog, args := range map[string][]string{"coord serve": {"coord", "serve", "--help"}, "swarmnode": {"swarmnode", "--help"}} {
		out, err := exec.Command(filepath.Join(dir, args[0]), args[1:]...).CombinedOutput()
		if err != nil {
			return env, fmt.Errorf("%s --help: %v\n%s", prog, err, out)
		}
		env.flags[prog] = map[string]bool{}
		for _, m := range flagRE.FindAllStringSubmatch(string(out), -1) {
			env.flags[prog][m[1]] = true
		}
		if len(env.flags[prog]) < 5 {
			return env, fmt.Errorf("%s --help lists no flags:\n%s", prog, out)
		}
	}
	return env, nil
}

func loadBase(t *testing.T, files map[string]string) *manifests {
	t.Helper()
	m, err := load("base", files)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestBaseFollowsTheRules(t *testing.T) {
	env := testEnv(t)
	m := loadBase(t, nil)
	for _, err := range check(m, env) {
		t.Error(err)
	}
	if len(m.statefulSets) != 1 || len(m.deployments) != 1 || len(m.pdbs) == 0 || len(m.netpols) == 0 || len(m.services) != 3 {
		t.Errorf("the base holds %d StatefulSets, %d Deployments, %d PDBs, %d NetworkPolicies, %d Services",
			len(m.statefulSets), len(m.deployments), len(m.pdbs), len(m.netpols), len(m.services))
	}
	if d := m.deployments[0]; d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
		t.Errorf("the swarm nodes start with 3 replicas")
	}
	// Every manifest file is part of the base.
	files, _ := filepath.Glob("base/*.yaml")
	for _, f := range files {
		name := filepath.Base(f)
		if name != "kustomization.yaml" && !slices.Contains(m.kust.Resources, name) {
			t.Errorf("base/%s is not among the kustomization's resources", name)
		}
	}
	top, err := load(".", nil)
	if err != nil || !slices.Equal(top.kust.Resources, []string{"base"}) {
		t.Errorf("deploy/k8s/kustomization.yaml must apply base/ as it is: %v %v", err, top)
	}
}

// TestExampleOverlay: the overlay and its patches decode strictly and
// name images, workloads and volumes the base has.
func TestExampleOverlay(t *testing.T) {
	base := loadBase(t, nil)
	dir := "overlays/example"
	ov, err := load(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(ov.kust.Resources, "../../base") {
		t.Errorf("the example overlay must build on ../../base, not %v", ov.kust.Resources)
	}
	images := map[string]bool{}
	for _, w := range base.workloads() {
		for _, c := range w.pod.Spec.Containers {
			images[strings.Split(c.Image, ":")[0]] = true
		}
	}
	for _, im := range ov.kust.Images {
		if !images[im.Name] || im.NewTag == "" {
			t.Errorf("overlay image %q: no container of the base runs it, or no newTag", im.Name)
		}
	}
	for _, r := range ov.kust.Replicas {
		if !slices.ContainsFunc(base.deployments, func(d *appsv1.Deployment) bool { return d.Name == r.Name }) {
			t.Errorf("overlay replicas name %q, no Deployment of the base", r.Name)
		}
	}
	for _, p := range ov.kust.Patches {
		data, err := os.ReadFile(filepath.Join(dir, p.Path))
		if err != nil {
			t.Fatal(err)
		}
		var pm manifests
		if err := pm.add(data); err != nil {
			t.Errorf("patch %s: %v", p.Path, err)
		}
		for _, s := range pm.statefulSets {
			if !slices.ContainsFunc(base.statefulSets, func(b *appsv1.StatefulSet) bool { return b.Name == s.Name }) {
				t.Errorf("patch %s names StatefulSet %s, not in the base", p.Path, s.Name)
			}
		}
	}
}

// TestBrokenManifestsAreCaught: each mutated copy of the base breaks one
// rule, and the check (or the strict decoding) says so.
func TestBrokenManifestsAreCaught(t *testing.T) {
	env := testEnv(t)
	coordFile, err := os.ReadFile("base/coordinator.yaml")
	if err != nil {
		t.Fatal(err)
	}
	coord := func(m *manifests) *corev1.Container { return &m.statefulSets[0].Spec.Template.Spec.Containers[0] }
	node := func(m *manifests) *corev1.Container { return &m.deployments[0].Spec.Template.Spec.Containers[0] }
	setArg := func(c *corev1.Container, flag, value string) {
		for i, a := range c.Args {
			if strings.HasPrefix(a, "--"+flag+"=") {
				c.Args[i] = "--" + flag + "=" + value
			}
		}
	}
	cases := []struct {
		name   string
		files  map[string]string // replaced files (strict decoding)
		mutate func(m *manifests)
		want   string
	}{
		{name: "unknown field", files: map[string]string{"coordinator.yaml": strings.Replace(string(coordFile), "serviceName:", "serviceNmae:", 1)},
			want: "unknown field"},
		{name: "field at the wrong level", files: map[string]string{"coordinator.yaml": strings.Replace(string(coordFile), "      terminationGracePeriodSeconds:", "      terminationGracePeriod:", 1)},
			want: "unknown field"},
		{name: "selector", mutate: func(m *manifests) { m.deployments[0].Spec.Selector.MatchLabels["app.kubernetes.io/component"] = "node" }, want: "selector does not match"},
		{name: "service selects nothing", mutate: func(m *manifests) { m.services[0].Spec.Selector["app.kubernetes.io/component"] = "coord" }, want: "selects no pods"},
		{name: "undocumented secret key", mutate: func(m *manifests) { coord(m).Env[1].ValueFrom.SecretKeyRef.Key = "cluster-key" }, want: "not in the Secret"},
		{name: "other secret", mutate: func(m *manifests) { node(m).Env[2].ValueFrom.SecretKeyRef.Name = "flotilla" }, want: "is not the documented"},
		{name: "http port", mutate: func(m *manifests) { setArg(coord(m), "http", "0.0.0.0:9090") }, want: "container port http/TCP"},
		{name: "peer port", mutate: func(m *manifests) { coord(m).Ports[1].ContainerPort = 6881 }, want: "container port peer/TCP"},
		{name: "delegate port", mutate: func(m *manifests) { node(m).Ports[2].ContainerPort = 7948 }, want: "container port delegate/TCP"},
		{name: "advertise port", mutate: func(m *manifests) { setArg(node(m), "advertise", "$(POD_IP):8000") }, want: "--advertise"},
		{name: "unknown flag", mutate: func(m *manifests) { node(m).Args = append(node(m).Args, "--probe-addr=:8081") }, want: "has no flag --probe-addr"},
		{name: "low port", mutate: func(m *manifests) { setArg(node(m), "http", "0.0.0.0:81"); node(m).Ports[3].ContainerPort = 81 }, want: "≥ 1024"},
		{name: "gossip not headless", mutate: func(m *manifests) { m.services[1].Spec.ClusterIP = "" }, want: "headless"},
		{name: "join elsewhere", mutate: func(m *manifests) { setArg(node(m), "join", "flotilla-coord:7946") }, want: "names no Service"},
		{name: "probe port", mutate: func(m *manifests) { node(m).ReadinessProbe.HTTPGet.Port = intstr.FromString("metrics") }, want: "readiness probe"},
		{name: "probe path", mutate: func(m *manifests) { coord(m).LivenessProbe.HTTPGet.Path = "/readyz" }, want: "liveness probe"},
		{name: "root", mutate: func(m *manifests) { coord(m).SecurityContext.RunAsUser = ptr(int64(0)) }, want: "non-root runAsUser"},
		{name: "writable root", mutate: func(m *manifests) { node(m).SecurityContext.ReadOnlyRootFilesystem = ptr(false) }, want: "readOnlyRootFilesystem"},
		{name: "capabilities", mutate: func(m *manifests) { node(m).SecurityContext.Capabilities.Drop = nil }, want: "drop ALL"},
		{name: "escalation", mutate: func(m *manifests) { coord(m).SecurityContext.AllowPrivilegeEscalation = ptr(true) }, want: "allowPrivilegeEscalation"},
		{name: "seccomp", mutate: func(m *manifests) {
			coord(m).SecurityContext.SeccompProfile.Type = corev1.SeccompProfileTypeUnconfined
		}, want: "seccompProfile"},
		{name: "no tmp", mutate: func(m *manifests) { node(m).VolumeMounts = node(m).VolumeMounts[:1] }, want: `"/tmp" is written`},
		{name: "grace period", mutate: func(m *manifests) {
			m.statefulSets[0].Spec.Template.Spec.TerminationGracePeriodSeconds = ptr(int64(30))
		}, want: "terminationGracePeriodSeconds"},
		{name: "pull policy", mutate: func(m *manifests) { node(m).ImagePullPolicy = corev1.PullAlways }, want: "imagePullPolicy"},
		{name: "no limit", mutate: func(m *manifests) { delete(coord(m).Resources.Limits, corev1.ResourceMemory) }, want: "memory needs a request and a limit"},
		{name: "gossip open to all", mutate: func(m *manifests) {
			m.netpols[1].Spec.Ingress[0].Ports = append(m.netpols[1].Spec.Ingress[0].Ports,
				networkingv1.NetworkPolicyPort{Protocol: ptr(corev1.ProtocolTCP), Port: ptr(intstr.FromInt32(7947))})
		}, want: "admits TCP/7947 from outside"},
		{name: "node ports range covers delegate", mutate: func(m *manifests) { m.netpols[2].Spec.Ingress[0].Ports[0].Port = ptr(intstr.FromInt32(1024)) }, want: "admits TCP/7947 from outside"},
		{name: "gossip not admitted", mutate: func(m *manifests) { m.netpols[0].Spec.Ingress[0].Ports = m.netpols[0].Spec.Ingress[0].Ports[:1] }, want: "no NetworkPolicy admits UDP/7946"},
		{name: "pdb", mutate: func(m *manifests) { m.pdbs[0].Spec.Selector.MatchLabels["app.kubernetes.io/component"] = "nodes" }, want: "PodDisruptionBudget"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := load("base", c.files)
			var errs []error
			if err != nil {
				errs = []error{err}
			} else {
				c.mutate(m)
				errs = check(m, env)
			}
			for _, e := range errs {
				if strings.Contains(e.Error(), c.want) {
					return
				}
			}
			t.Errorf("the broken manifest passed, or failed only for other reasons (want %q): %v", c.want, errs)
		})
	}
}
