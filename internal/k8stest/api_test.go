package k8stest

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"flotilla/internal/testenv"
	"flotilla/service"
)

// apiClient is a client of coord serve's API reached through its
// ClusterIP Service, from the host through kube-proxy's rules. Requests
// name Host localhost, which coord serve always admits.
func apiClient(clusterIP string, port int, token string) *service.Client {
	addr := net.JoinHostPort(clusterIP, strconv.Itoa(port))
	d := net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		DisableKeepAlives: true, // a restarted coordinator is a new endpoint
	}
	return &service.Client{
		Server: "http://localhost:" + strconv.Itoa(port),
		Token:  token,
		HTTP:   &http.Client{Transport: tr, Timeout: 20 * time.Second},
	}
}

// getJob is the job's detail, or false when the API does not answer now
// (the coordinator restarting).
func getJob(c *service.Client, id string) (service.JobDetail, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	j, err := c.Get(ctx, id)
	return j, err == nil
}

// addTorrent adds body through the API, retrying while the Service has no
// ready endpoint.
func addTorrent(t *testing.T, c *service.Client, body []byte) service.JobInfo {
	t.Helper()
	var job service.JobInfo
	var last error
	testenv.WaitEvery(t, 2*time.Minute, time.Second, "the API to accept the torrent", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		job, last = c.Add(ctx, body, service.AddOptions{})
		if last != nil {
			t.Logf("add: %v", last)
		}
		return last == nil
	})
	return job
}

// nodeWorkers are a job's swarm-node workers, by name (a swarm node's name
// is its hostname, the pod's name, then "@" and its address).
func nodeWorkers(j service.JobDetail) map[string]service.WorkerInfo {
	m := map[string]service.WorkerInfo{}
	for _, w := range j.Workers {
		if w.Name != "local" {
			m[w.Name] = w
		}
	}
	return m
}

// podOf is the pod name in a swarm node's name.
func podOf(worker string) string {
	name, _, _ := strings.Cut(worker, "@")
	return name
}
