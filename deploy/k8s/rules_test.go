package k8s

import (
	"fmt"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ruleEnv is what the rules check the manifests against besides
// themselves: the documented Secret and the programs' real flags.
type ruleEnv struct {
	secretName string
	secretKeys map[string]bool
	// flags lists each program's flags ("coord serve", "swarmnode") as
	// their --help prints them.
	flags map[string]map[string]bool
}

// memberLabel marks every Flotilla pod; gossip is admitted from those only.
const memberLabel = "app.kubernetes.io/name"

// check returns every rule the manifests break.
func check(m *manifests, env ruleEnv) []error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if len(m.namespaces) != 1 || m.kust.Namespace != m.namespaces[0].Name {
		fail("the base must hold one Namespace, the kustomization's namespace %q", m.kust.Namespace)
	}
	ws := m.workloads()
	for _, w := range ws {
		checkWorkload(w, env, fail)
	}
	checkServices(m, ws, fail)
	checkNetworkPolicies(m, ws, fail)
	for _, p := range m.pdbs {
		if len(selected(p.Spec.Selector, ws)) == 0 {
			fail("PodDisruptionBudget %s selects no pods", p.Name)
		}
	}
	return errs
}

// program says which program and flag set a container runs.
func program(c corev1.Container) (string, map[string]string) {
	flags := map[string]string{}
	prog := ""
	switch {
	case strings.HasPrefix(path.Base(c.Image), "flotilla-coord"):
		prog = "coord"
	case strings.HasPrefix(path.Base(c.Image), "flotilla-swarmnode"):
		prog = "swarmnode"
	}
	for _, a := range append(slices.Clone(c.Command), c.Args...) {
		if !strings.HasPrefix(a, "-") {
			if prog == "coord" && a == "serve" {
				prog = "coord serve"
			}
			continue
		}
		k, v, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		flags[k] = v
	}
	return prog, flags
}

func portOf(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return -1
	}
	return n
}

func containerPort(c corev1.Container, name string, proto corev1.Protocol) (int32, bool) {
	for _, p := range c.Ports {
		if p.Name == name && (p.Protocol == proto || p.Protocol == "" && proto == corev1.ProtocolTCP) {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

func checkWorkload(w workload, env ruleEnv, fail func(string, ...any)) {
	id := w.kind + " " + w.name
	sel, err := metav1.LabelSelectorAsSelector(w.selector)
	if err != nil || w.selector == nil || sel.Empty() || !sel.Matches(labels.Set(w.pod.Labels)) {
		fail("%s: its selector does not match its pod template's labels %v", id, w.pod.Labels)
	}
	if w.pod.Labels[memberLabel] != "flotilla" {
		fail("%s: its pods lack the label %s=flotilla the gossip NetworkPolicy admits", id, memberLabel)
	}
	spec := &w.pod.Spec
	checkPodSecurity(id, spec, fail)
	for _, c := range spec.Containers {
		cid := id + " container " + c.Name
		prog, flags := program(c)
		known, ok := env.flags[prog]
		if !ok {
			fail("%s: image %q runs no program the rules know (coord serve, swarmnode)", cid, c.Image)
			continue
		}
		for f := range flags {
			if !known[f] {
				fail("%s: %s has no flag --%s", cid, prog, f)
			}
		}
		if c.ImagePullPolicy != corev1.PullIfNotPresent {
			fail("%s: imagePullPolicy %q, want IfNotPresent in the base", cid, c.ImagePullPolicy)
		}
		checkPorts(cid, c, prog, flags, fail)
		checkProbes(cid, c, flags, fail)
		checkContainerSecurity(cid, spec, c, fail)
		checkSecretRefs(cid, c, spec, env, fail)
		checkResources(cid, c, fail)
		checkWritable(cid, c, prog, flags, fail)
		if prog == "coord serve" {
			d, err := time.ParseDuration(flags["shutdown-timeout"])
			if err != nil {
				fail("%s: --shutdown-timeout must be given (the grace period is set above it)", cid)
			} else if g := spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second < d+10*time.Second {
				fail("%s: terminationGracePeriodSeconds must exceed --shutdown-timeout %v by 10 s at least", cid, d)
			}
		}
	}
}

// checkPorts: every port ≥ 1024 and each named port is the one its flag
// binds.
func checkPorts(cid string, c corev1.Container, prog string, flags map[string]string, fail func(string, ...any)) {
	for _, p := range c.Ports {
		if p.ContainerPort < 1024 {
			fail("%s: port %s is %d; Flotilla's ports are ≥ 1024 (no capability to bind lower)", cid, p.Name, p.ContainerPort)
		}
	}
	gossip := portOf(flags["cluster-listen"])
	want := []struct {
		name  string
		proto corev1.Protocol
		port  int
		flag  string
	}{
		{"gossip", corev1.ProtocolTCP, gossip, "--cluster-listen"},
		{"gossip-udp", corev1.ProtocolUDP, gossip, "--cluster-listen"},
		{"delegate", corev1.ProtocolTCP, gossip + 1, "--cluster-listen's port + 1"},
		{"http", corev1.ProtocolTCP, portOf(flags["http"]), "--http"},
		{"peer", corev1.ProtocolTCP, portOf(flags["listen"]), "--listen"},
	}
	if prog == "swarmnode" {
		want[3].name = "probes"
		want = want[:4] // --listen's port is 0: a port per job
	}
	for _, w := range want {
		got, ok := containerPort(c, w.name, w.proto)
		if !ok || int(got) != w.port || w.port <= 0 {
			fail("%s: container port %s/%s is %d, but %s says %d", cid, w.name, w.proto, got, w.flag, w.port)
		}
	}
	if a := flags["advertise"]; portOf(a) != gossip {
		fail("%s: --advertise %s must name --cluster-listen's port %d", cid, a, gossip)
	}
}

func checkProbes(cid string, c corev1.Container, flags map[string]string, fail func(string, ...any)) {
	httpPort := portOf(flags["http"])
	for _, p := range []struct {
		kind string
		pr   *corev1.Probe
		path string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}, {"startup", c.StartupProbe, "/healthz"}} {
		if p.pr == nil {
			if p.kind != "startup" {
				fail("%s: no %s probe", cid, p.kind)
			}
			continue
		}
		g := p.pr.HTTPGet
		if g == nil {
			fail("%s: the %s probe must be an httpGet of %s", cid, p.kind, p.path)
			continue
		}
		port := resolvePort(c, g.Port)
		if g.Path != p.path || port != httpPort || httpPort <= 0 {
			fail("%s: the %s probe gets %s on port %v (%d), want %s on --http's port %d", cid, p.kind, g.Path, g.Port.String(), port, p.path, httpPort)
		}
	}
}

// resolvePort is the number of a container port given by name or number
// (-1 if no declared port).
func resolvePort(c corev1.Container, p intstr.IntOrString) int {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return int(cp.ContainerPort)
		}
	}
	return -1
}

func checkPodSecurity(id string, spec *corev1.PodSpec, fail func(string, ...any)) {
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		fail("%s: host namespaces are not for Flotilla's pods", id)
	}
	if a := spec.AutomountServiceAccountToken; a == nil || *a {
		fail("%s: automountServiceAccountToken must be false (Flotilla does not talk to the API server)", id)
	}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			fail("%s: hostPath volume %s in the base (an overlay may use a hostPath PersistentVolume)", id, v.Name)
		}
	}
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		fail("%s: the pod's securityContext must set runAsNonRoot and a numeric non-root runAsUser", id)
	}
}

func checkContainerSecurity(cid string, spec *corev1.PodSpec, c corev1.Container, fail func(string, ...any)) {
	sc, psc := c.SecurityContext, spec.SecurityContext
	if sc == nil {
		fail("%s: no securityContext", cid)
		return
	}
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		fail("%s: runAsNonRoot and a numeric non-root runAsUser are required", cid)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		fail("%s: readOnlyRootFilesystem must be true", cid)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		fail("%s: allowPrivilegeEscalation must be false", cid)
	}
	if sc.Privileged != nil && *sc.Privileged {
		fail("%s: privileged", cid)
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		fail("%s: capabilities must drop ALL and add none", cid)
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil && psc != nil {
		seccomp = psc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		fail("%s: seccompProfile must be RuntimeDefault", cid)
	}
}

func checkSecretRefs(cid string, c corev1.Container, spec *corev1.PodSpec, env ruleEnv, fail func(string, ...any)) {
	ref := func(name, key string) {
		if name != env.secretName {
			fail("%s: Secret %q is not the documented %q", cid, name, env.secretName)
		} else if key != "" && !env.secretKeys[key] {
			fail("%s: key %q is not in the Secret docs/kubernetes.md creates (keys %v)", cid, key, slices.Sorted(mapKeys(env.secretKeys)))
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			ref(e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
		}
	}
	for _, e := range c.EnvFrom {
		if e.SecretRef != nil {
			ref(e.SecretRef.Name, "")
		}
	}
	for _, v := range spec.Volumes {
		if v.Secret != nil {
			ref(v.Secret.SecretName, "")
			for _, it := range v.Secret.Items {
				ref(v.Secret.SecretName, it.Key)
			}
		}
	}
}

func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func checkResources(cid string, c corev1.Container, fail func(string, ...any)) {
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okr := c.Resources.Requests[r]
		lim, okl := c.Resources.Limits[r]
		if !okr || !okl || req.Cmp(lim) > 0 {
			fail("%s: %s needs a request and a limit at least as large", cid, r)
		}
	}
}

// checkWritable: the directories the program writes lie on writable
// volumes, /tmp too (the root file system is read-only).
func checkWritable(cid string, c corev1.Container, prog string, flags map[string]string, fail func(string, ...any)) {
	dirs := []string{"/tmp", flags["data"]}
	if prog == "coord serve" {
		dirs = append(dirs, flags["state"])
	}
	for _, d := range dirs {
		ok := false
		for _, m := range c.VolumeMounts {
			if !m.ReadOnly && (d == m.MountPath || strings.HasPrefix(d, strings.TrimSuffix(m.MountPath, "/")+"/")) {
				ok = true
			}
		}
		if d == "" || !ok {
			fail("%s: %q is written but on no writable volume", cid, d)
		}
	}
}

func selected(s *metav1.LabelSelector, ws []workload) []workload {
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil || s == nil || sel.Empty() {
		return nil
	}
	var out []workload
	for _, w := range ws {
		if sel.Matches(labels.Set(w.pod.Labels)) {
			out = append(out, w)
		}
	}
	return out
}

func checkServices(m *manifests, ws []workload, fail func(string, ...any)) {
	byName := map[string]*corev1.Service{}
	for _, s := range m.services {
		byName[s.Name] = s
		pods := selected(&metav1.LabelSelector{MatchLabels: s.Spec.Selector}, ws)
		if len(pods) == 0 {
			fail("Service %s selects no pods", s.Name)
		}
		for _, p := range s.Spec.Ports {
			if p.Port < 1024 {
				fail("Service %s: port %s is %d, below 1024", s.Name, p.Name, p.Port)
			}
			for _, w := range pods {
				if resolvePort(w.pod.Spec.Containers[0], p.TargetPort) < 0 {
					fail("Service %s: targetPort %s is no port of %s %s", s.Name, p.TargetPort.String(), w.kind, w.name)
				}
			}
		}
	}
	for _, st := range m.statefulSets {
		if s := byName[st.Spec.ServiceName]; s == nil || s.Spec.ClusterIP != corev1.ClusterIPNone {
			fail("StatefulSet %s: serviceName %q must be a headless Service", st.Name, st.Spec.ServiceName)
		}
		if len(st.Spec.VolumeClaimTemplates) == 0 || st.Spec.Replicas == nil || *st.Spec.Replicas != 1 {
			fail("StatefulSet %s: one replica with a volumeClaimTemplate for its state", st.Name)
		}
	}
	for _, w := range ws {
		for _, c := range w.pod.Spec.Containers {
			prog, flags := program(c)
			if prog != "swarmnode" {
				continue
			}
			host, port, err := net.SplitHostPort(flags["join"])
			s := byName[strings.Split(host, ".")[0]]
			switch {
			case err != nil || s == nil:
				fail("%s %s: --join %q names no Service of these manifests", w.kind, w.name, flags["join"])
			case s.Spec.ClusterIP != corev1.ClusterIPNone || !s.Spec.PublishNotReadyAddresses:
				fail("the gossip Service %s must be headless and publish not-ready addresses", s.Name)
			case port != strconv.Itoa(portOf(flags["cluster-listen"])):
				fail("%s %s: --join port %s is not the gossip port", w.kind, w.name, port)
			}
		}
	}
}

// checkNetworkPolicies: gossip and delegate ports are admitted to every
// member from Flotilla's pods, and by no rule open to others.
func checkNetworkPolicies(m *manifests, ws []workload, fail func(string, ...any)) {
	private := []networkingv1.NetworkPolicyPort{
		{Protocol: ptr(corev1.ProtocolTCP), Port: ptr(intstr.FromInt32(7946))},
		{Protocol: ptr(corev1.ProtocolUDP), Port: ptr(intstr.FromInt32(7946))},
		{Protocol: ptr(corev1.ProtocolTCP), Port: ptr(intstr.FromInt32(7947))},
	}
	admitted := map[string]int{}
	for _, np := range m.netpols {
		pods := selected(&np.Spec.PodSelector, ws)
		if len(pods) == 0 {
			fail("NetworkPolicy %s selects no pods", np.Name)
		}
		if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
			fail("NetworkPolicy %s: policyTypes must include Ingress", np.Name)
		}
		for _, r := range np.Spec.Ingress {
			own := len(r.From) > 0
			for _, f := range r.From {
				if f.IPBlock != nil || f.NamespaceSelector != nil || f.PodSelector == nil || f.PodSelector.MatchLabels[memberLabel] != "flotilla" {
					own = false
				}
			}
			for _, p := range private {
				if !covers(r.Ports, p) {
					continue
				}
				if !own {
					fail("NetworkPolicy %s admits %s/%s from outside Flotilla's pods", np.Name, *p.Protocol, p.Port.String())
					continue
				}
				for _, w := range pods {
					admitted[w.name+" "+string(*p.Protocol)+"/"+p.Port.String()]++
				}
			}
		}
	}
	for _, w := range ws {
		for _, p := range private {
			if admitted[w.name+" "+string(*p.Protocol)+"/"+p.Port.String()] == 0 {
				fail("no NetworkPolicy admits %s/%s to %s %s from Flotilla's pods", *p.Protocol, p.Port.String(), w.kind, w.name)
			}
		}
	}
}

// covers reports whether a rule's ports admit p (no ports: all).
func covers(ports []networkingv1.NetworkPolicyPort, p networkingv1.NetworkPolicyPort) bool {
	if len(ports) == 0 {
		return true
	}
	for _, q := range ports {
		proto := corev1.ProtocolTCP
		if q.Protocol != nil {
			proto = *q.Protocol
		}
		if proto != *p.Protocol {
			continue
		}
		if q.Port == nil {
			return true
		}
		lo, hi := q.Port.IntVal, q.Port.IntVal
		if q.EndPort != nil {
			hi = *q.EndPort
		}
		if q.Port.Type == intstr.String || (p.Port.IntVal >= lo && p.Port.IntVal <= hi) {
			return true
		}
	}
	return false
}

func ptr[T any](v T) *T { return &v }
