package k8stest

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// pod is the part of a Pod object the test reads.
type pod struct {
	Metadata struct {
		Name              string            `json:"name"`
		CreationTimestamp time.Time         `json:"creationTimestamp"`
		DeletionTimestamp *time.Time        `json:"deletionTimestamp"`
		Labels            map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Containers []struct {
			Name      string `json:"name"`
			Resources struct {
				Requests map[string]string `json:"requests"`
				Limits   map[string]string `json:"limits"`
			} `json:"resources"`
		} `json:"containers"`
	} `json:"spec"`
	Status struct {
		Phase      string `json:"phase"`
		PodIP      string `json:"podIP"`
		Conditions []struct {
			Type               string    `json:"type"`
			Status             string    `json:"status"`
			LastTransitionTime time.Time `json:"lastTransitionTime"`
		} `json:"conditions"`
	} `json:"status"`
}

func (p pod) ready() bool {
	if p.Metadata.DeletionTimestamp != nil {
		return false
	}
	_, ok := p.readyAt()
	return ok
}

// readyAt is when the pod last became Ready.
func (p pod) readyAt() (time.Time, bool) {
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" && c.Status == "True" {
			return c.LastTransitionTime, true
		}
	}
	return time.Time{}, false
}

// startToReady is the time from the pod's creation to Ready (the API's
// timestamps have one-second resolution).
func (p pod) startToReady() time.Duration {
	at, _ := p.readyAt()
	return at.Sub(p.Metadata.CreationTimestamp)
}

type podList struct {
	Items []pod `json:"items"`
}

// pods lists the pods matching selector in ns, by name.
func (c *cluster) pods(ns, selector string) ([]pod, error) {
	var l podList
	args := []string{"pods", "-n", ns}
	if selector != "" {
		args = append(args, "-l", selector)
	}
	if err := c.getJSON(&l, args...); err != nil {
		return nil, err
	}
	sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].Metadata.Name < l.Items[j].Metadata.Name })
	return l.Items, nil
}

// figures are the measurements the test reports (never checks).
type figures struct {
	lines []string
}

func (f *figures) add(what string, d time.Duration) {
	f.lines = append(f.lines, fmt.Sprintf("%-60s %8.1f s", what, d.Seconds()))
}

func (f *figures) addf(format string, args ...any) {
	f.lines = append(f.lines, fmt.Sprintf(format, args...))
}

func (f *figures) String() string { return strings.Join(f.lines, "\n") }

// summary is the part of kubelet's summary API (/stats/summary) the test reads.
type summary struct {
	Pods []struct {
		PodRef struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"podRef"`
		Memory struct {
			WorkingSetBytes uint64 `json:"workingSetBytes"`
		} `json:"memory"`
	} `json:"pods"`
}

// recordMemory adds each pod's working set in ns, read from the kubelet's
// summary API, beside its containers' memory requests and limits.
func (c *cluster) recordMemory(fig *figures, ns, when string) {
	c.t.Helper()
	raw, err := c.kubectl("get", "--raw", "/api/v1/nodes/"+c.node+"/proxy/stats/summary")
	if err != nil {
		c.t.Logf("memory figures unavailable: %v", err)
		return
	}
	var s summary
	if err := jsonUnmarshal(raw, &s); err != nil {
		c.t.Logf("memory figures unavailable: %v", err)
		return
	}
	pods, err := c.pods(ns, "")
	if err != nil {
		c.t.Logf("memory figures unavailable: %v", err)
		return
	}
	spec := map[string]pod{}
	for _, p := range pods {
		spec[p.Metadata.Name] = p
	}
	for _, p := range s.Pods {
		if p.PodRef.Namespace != ns {
			continue
		}
		req, lim := "-", "-"
		if sp, ok := spec[p.PodRef.Name]; ok && len(sp.Spec.Containers) > 0 {
			r := sp.Spec.Containers[0].Resources
			req, lim = orDash(r.Requests["memory"]), orDash(r.Limits["memory"])
		}
		fig.addf("memory %-12s %-40s %6.1f MiB (request %s, limit %s)", when, p.PodRef.Name,
			float64(p.Memory.WorkingSetBytes)/(1<<20), req, lim)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
