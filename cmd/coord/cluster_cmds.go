package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"sort"
	"text/tabwriter"
	"time"

	"flotilla/cluster"
	"flotilla/internal/clusteropt"
)

func runKeygen(_ context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet("keygen", "", "Writes a new random cluster key to standard output, e.g. `coord keygen > cluster.key`.\n"+
		"Give the same key to the coordinator and every swarm node (--cluster-key-file, or the\n"+
		"FLOTILLA_CLUSTER_KEY environment variable). Anyone holding it can join the cluster.", env.stderr)
	if _, err := parseInterspersed(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	k, err := cluster.GenerateKey()
	if err != nil {
		fmt.Fprintf(env.stderr, "coord keygen: %v\n", err)
		return 1
	}
	fmt.Fprintln(env.stdout, k.Text())
	return 0
}

func runNodes(ctx context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet("nodes", "--join ADDR", "Joins the cluster briefly and lists its members: name, role, gossip address,\n"+
		"delegate endpoint, version and capacity. Exits 1 if no member answers within --timeout.", env.stderr)
	var co clusteropt.Options
	co.Register(fs, "comma-separated HOST[:PORT] of cluster members to ask (required)")
	asJSON := fs.Bool("json", false, "print the members as JSON")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to try to join")
	if _, err := parseInterspersed(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if len(co.JoinList()) == 0 {
		fmt.Fprintln(env.stderr, "coord nodes: --join ADDR is required")
		return 2
	}
	if co.Listen == "" {
		co.Listen = "127.0.0.1:0"
	}
	key, err := co.Key(env.getenv)
	if err != nil {
		fmt.Fprintf(env.stderr, "coord nodes: %v\n", err)
		return 1
	}
	ep, err := co.Endpoints()
	if err != nil {
		fmt.Fprintf(env.stderr, "coord nodes: %v\n", err)
		return 2
	}
	cfg := cluster.DefaultConfig()
	cfg.BindAddr, cfg.AdvertiseAddr, cfg.Key, cfg.Join = ep.GossipBind, ep.GossipAdvertise, key, co.JoinList()
	cfg.Meta = cluster.Meta{Role: cluster.RoleCoordinator, Version: version}
	c, err := cluster.Start(cfg)
	if err != nil {
		fmt.Fprintf(env.stderr, "coord nodes: %v\n", err)
		return 1
	}
	defer c.Close()
	select {
	case <-c.Joined():
	case <-time.After(*timeout):
		fmt.Fprintf(env.stderr, "coord nodes: could not join %s within %v: %v\n", co.Join, *timeout, c.JoinErr())
		return 1
	case <-ctx.Done():
		return exitInterrupted
	}
	var members []cluster.Member
	for _, m := range c.Members() {
		if !m.Local {
			members = append(members, m)
		}
	}
	defer c.Leave(time.Second)
	sort.Slice(members, func(i, j int) bool { return members[i].Name < members[j].Name })
	if *asJSON {
		type row struct {
			Name, Role, Gossip, Delegate, Version string
			Slots                                 int
			Bandwidth                             int64
		}
		rows := []row{}
		for _, m := range members {
			rows = append(rows, row{m.Name, string(m.Meta.Role), m.Addr.String(), m.Meta.DelegateAddr, m.Meta.Version, m.Meta.Slots, m.Meta.Bandwidth})
		}
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rows)
		return 0
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tGOSSIP\tDELEGATE\tVERSION\tSLOTS")
	for _, m := range members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", m.Name, m.Meta.Role, m.Addr, m.Meta.DelegateAddr, m.Meta.Version, m.Meta.Slots)
	}
	tw.Flush()
	return 0
}
