package k8s

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// kustomization is the part of kustomize's Kustomization these manifests
// use; decoding one strictly refuses any other field.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace,omitempty"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
	} `json:"images,omitempty"`
	Replicas []struct {
		Name  string `json:"name"`
		Count int32  `json:"count"`
	} `json:"replicas,omitempty"`
	Patches []struct {
		Path string `json:"path"`
	} `json:"patches,omitempty"`
}

// manifests are the decoded objects of a kustomize directory.
type manifests struct {
	kust         kustomization
	namespaces   []*corev1.Namespace
	services     []*corev1.Service
	statefulSets []*appsv1.StatefulSet
	deployments  []*appsv1.Deployment
	pdbs         []*policyv1.PodDisruptionBudget
	netpols      []*networkingv1.NetworkPolicy
}

// workload is a StatefulSet or Deployment seen through what the rules
// need.
type workload struct {
	kind, name string
	selector   *metav1.LabelSelector
	pod        *corev1.PodTemplateSpec
}

func (m *manifests) workloads() []workload {
	var ws []workload
	for _, s := range m.statefulSets {
		ws = append(ws, workload{"StatefulSet", s.Name, s.Spec.Selector, &s.Spec.Template})
	}
	for _, d := range m.deployments {
		ws = append(ws, workload{"Deployment", d.Name, d.Spec.Selector, &d.Spec.Template})
	}
	return ws
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// strict decodes YAML into v, failing on unknown or duplicate fields.
func strict(doc []byte, v any) error {
	return yaml.UnmarshalStrict(doc, v)
}

// readFile reads a file of the kustomize directory dir; files, when not
// nil, maps names to replaced contents (the tests' mutated copies).
func readFile(dir, name string, files map[string]string) ([]byte, error) {
	if s, ok := files[name]; ok {
		return []byte(s), nil
	}
	return os.ReadFile(filepath.Join(dir, name))
}

// load decodes the kustomization in dir and every document of its
// resources (files only: a directory resource is loaded by its own call).
func load(dir string, files map[string]string) (*manifests, error) {
	raw, err := readFile(dir, "kustomization.yaml", files)
	if err != nil {
		return nil, err
	}
	m := &manifests{}
	if err := strict(raw, &m.kust); err != nil {
		return nil, fmt.Errorf("kustomization.yaml: %w", err)
	}
	if m.kust.APIVersion != "kustomize.config.k8s.io/v1beta1" || m.kust.Kind != "Kustomization" {
		return nil, fmt.Errorf("kustomization.yaml: %s %s is not a kustomize.config.k8s.io/v1beta1 Kustomization", m.kust.APIVersion, m.kust.Kind)
	}
	for _, r := range m.kust.Resources {
		if fi, err := os.Stat(filepath.Join(dir, r)); err == nil && fi.IsDir() {
			continue
		}
		data, err := readFile(dir, r, files)
		if err != nil {
			return nil, fmt.Errorf("resource %s: %w", r, err)
		}
		for i, doc := range docSep.Split(string(data), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			if err := m.add([]byte(doc)); err != nil {
				return nil, fmt.Errorf("%s, document %d: %w", r, i+1, err)
			}
		}
	}
	return m, nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// add decodes one document strictly as the type its apiVersion and kind
// name.
func (m *manifests) add(doc []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	var err error
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 Namespace":
		o := &corev1.Namespace{}
		err = strict(doc, o)
		m.namespaces = append(m.namespaces, o)
	case "v1 Service":
		o := &corev1.Service{}
		err = strict(doc, o)
		m.services = append(m.services, o)
	case "apps/v1 StatefulSet":
		o := &appsv1.StatefulSet{}
		err = strict(doc, o)
		m.statefulSets = append(m.statefulSets, o)
	case "apps/v1 Deployment":
		o := &appsv1.Deployment{}
		err = strict(doc, o)
		m.deployments = append(m.deployments, o)
	case "policy/v1 PodDisruptionBudget":
		o := &policyv1.PodDisruptionBudget{}
		err = strict(doc, o)
		m.pdbs = append(m.pdbs, o)
	case "networking.k8s.io/v1 NetworkPolicy":
		o := &networkingv1.NetworkPolicy{}
		err = strict(doc, o)
		m.netpols = append(m.netpols, o)
	default:
		return fmt.Errorf("%q %q is not a kind these manifests use (add it to the test if it should be)", tm.APIVersion, tm.Kind)
	}
	return err
}

// secretKeys are the keys of the Secret docs/kubernetes.md tells the
// operator to create: its name and the --from-file/--from-literal keys of
// its `kubectl create secret generic` command.
func secretKeys(doc []byte) (name string, keys map[string]bool, err error) {
	re := regexp.MustCompile(`kubectl (?:-n \S+ )?create secret generic (\S+)((?:\s*\\?\n?\s*--from-(?:file|literal)=\S+)+)`)
	mm := re.FindSubmatch(doc)
	if mm == nil {
		return "", nil, fmt.Errorf("docs/kubernetes.md has no `kubectl create secret generic NAME --from-file=...` command")
	}
	keys = map[string]bool{}
	for _, f := range regexp.MustCompile(`--from-(file|literal)=(\S+)`).FindAllSubmatch(mm[2], -1) {
		k := string(f[2])
		if i := strings.IndexByte(k, '='); i >= 0 {
			k = k[:i]
		} else if bytes.Equal(f[1], []byte("file")) {
			k = filepath.Base(k)
		}
		keys[k] = true
	}
	return string(mm[1]), keys, nil
}
