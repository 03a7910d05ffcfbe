package main

import (
	"context"
	"testing"
	"time"

	"flotilla/cluster"
	"flotilla/internal/testenv"
)

// startCoordinatorMember starts a cluster member in the coordinator's role
// at bindAddr ("127.0.0.1:0": any port) holding key; it leaves when the
// test ends.
func startCoordinatorMember(t *testing.T, key cluster.Key, bindAddr string) *cluster.Cluster {
	t.Helper()
	cfg := cluster.DefaultConfig()
	cfg.Name, cfg.BindAddr, cfg.Key, cfg.Profile = "coord", bindAddr, key, cluster.ProfileLocal
	cfg.Meta = cluster.Meta{Role: cluster.RoleCoordinator, Version: "test"}
	c, err := cluster.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// nodeProc is swarmnode's run on a goroutine of the test.
type nodeProc struct {
	code      chan int // its exit code, once it returns
	out, errb syncBuffer
}

// startNode runs swarmnode with args and key in FLOTILLA_CLUSTER_KEY until
// ctx ends.
func startNode(ctx context.Context, key cluster.Key, args ...string) *nodeProc {
	p := &nodeProc{code: make(chan int, 1)}
	go func() {
		p.code <- run(ctx, args, &p.out, &p.errb, func(k string) string {
			if k == cluster.KeyEnv {
				return key.Text()
			}
			return ""
		})
	}()
	return p
}

// waitMember waits until c lists the member named name (failing if the
// node exits first) and returns it.
func (p *nodeProc) waitMember(t *testing.T, c *cluster.Cluster, name, what string) cluster.Member {
	t.Helper()
	var node cluster.Member
	testenv.WaitFor(t, 15*time.Second, what, func() bool {
		select {
		case code := <-p.code:
			t.Fatalf("swarmnode exited %d:\n%s", code, p.errb.String())
		default:
		}
		for _, m := range c.Members() {
			if m.Name == name {
				node = m
				return true
			}
		}
		return false
	})
	return node
}
