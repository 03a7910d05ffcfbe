package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"text/tabwriter"
	"time"

	"flotilla/cluster"
	"flotilla/delegate"
	"flotilla/internal/clusteropt"
)

func runKeygen(_ context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet("keygen", "", "Writes a new random cluster key to standard output, e.g. `coord keygen > cluster.key`.\n"+
		"Give the same key to the coordinator and every swarm node (--cluster-key-file, or the\n"+
		"FLOTILLA_CLUSTER_KEY environment variable). Anyone holding it can join the cluster.\n"+
		"With --coordinator FILE it instead writes a new coordinator key to FILE (mode 0600, never\n"+
		"overwritten) and prints its public half, e.g. `coord keygen --coordinator coordinator.key >\n"+
		"coordinator.pub`: give the coordinator --coordinator-key-file coordinator.key and every swarm\n"+
		"node --coordinator-pubkey-file coordinator.pub; nodes then obey only that coordinator.", env)
	coordFile := fs.String("coordinator", "", "write a new coordinator key to this file and print its public half")
	if _, err := fs.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *coordFile != "" {
		priv, err := delegate.GenerateCoordinatorKey()
		if err != nil {
			return failf(env.stderr, "keygen", "try again; the system's random source failed", "%v", err)
		}
		f, err := os.OpenFile(*coordFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return failf(env.stderr, "keygen", "an existing key file is never overwritten: choose another name or remove the old one", "%v", err)
		}
		_, err = fmt.Fprintln(f, delegate.CoordinatorKeyText(priv))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(*coordFile)
			return failf(env.stderr, "keygen", "check the disk and the directory's permissions, then run it again", "write %s: %v", *coordFile, err)
		}
		fmt.Fprintln(env.stdout, delegate.CoordinatorPubKeyText(priv.Public().(ed25519.PublicKey)))
		return 0
	}
	k, err := cluster.GenerateKey()
	if err != nil {
		return failf(env.stderr, "keygen", "try again; the system's random source failed", "%v", err)
	}
	fmt.Fprintln(env.stdout, k.Text())
	return 0
}

func runNodes(ctx context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet("nodes", "--join ADDR | --server URL", "Joins the cluster briefly and lists its members: name, role, gossip address,\n"+
		"delegate endpoint, version and capacity. Exits 1 if no member answers within --timeout.\n"+
		"With --server it asks coord serve instead, which also says what each member does for its jobs.", env)
	var co clusteropt.Options
	co.Register(fs.FlagSet, "comma-separated HOST[:PORT] of cluster members to ask (required without --server)")
	asJSON := fs.Bool("json", false, "print the members as JSON")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to try to join")
	server := fs.String("server", "", "URL of a coord serve's API to ask instead of joining the cluster")
	tokenFile := fs.String("token-file", "", "with --server: file holding the API token; default: $"+tokenEnv)
	if _, err := fs.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *server != "" {
		x := &clientCmd{name: "nodes", env: env, o: clientOpts{server: *server, tokenFile: *tokenFile, json: *asJSON}}
		c, code := x.o.client(env, "nodes")
		if code != 0 {
			return code
		}
		x.c = c
		return x.nodes(ctx)
	}
	if len(co.JoinList()) == 0 {
		failf(env.stderr, "nodes", "give the address of any member, e.g. --join 10.0.0.1:7946", "--join ADDR is required")
		return 2
	}
	if co.Listen == "" {
		co.Listen = "127.0.0.1:0"
	}
	key, err := co.Key(env.getenv)
	if err != nil {
		return failErr(env.stderr, "nodes", "", err)
	}
	ep, err := co.Endpoints()
	if err != nil {
		failErr(env.stderr, "nodes", "", err)
		return 2
	}
	cfg := cluster.DefaultConfig()
	cfg.BindAddr, cfg.AdvertiseAddr, cfg.Key, cfg.Join = ep.GossipBind, ep.GossipAdvertise, key, co.JoinList()
	cfg.Meta = cluster.Meta{Role: cluster.RoleCoordinator, Version: version}
	c, err := cluster.Start(cfg)
	if err != nil {
		return failErr(env.stderr, "nodes", "", err)
	}
	defer c.Close()
	select {
	case <-c.Joined():
	case <-time.After(*timeout):
		return failf(env.stderr, "nodes", "check that a member runs there with the same cluster key, or wait longer with --timeout",
			"could not join %s within %v: %v", co.Join, *timeout, c.JoinErr())
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
