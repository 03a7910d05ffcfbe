package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"flotilla/dht"
)

// dhtOpts are the DHT flags of coord download, seed and serve.
//
// The DHT is on by default and joins through the public routers
// (dht.DefaultBootstrap). Tests never do: the dht package refuses the
// public routers inside a test binary and in any program started with
// dht.EnvNoPublic set (internal/testenv sets it), so every test, the
// demo, the benchmarks and the lab pass --dht-bootstrap or --dht=false.
type dhtOpts struct {
	on        bool
	bootstrap string
	listen    string
	state     string
}

// defaultDHTListen is the DHT's port unless --dht-listen says otherwise;
// when another program holds it, the node takes any free port instead.
const defaultDHTListen = "0.0.0.0:6881"

func (o *dhtOpts) register(fs *flag.FlagSet, stateDefault string) {
	fs.BoolVar(&o.on, "dht", true, "find peers through the BitTorrent DHT too (never for private torrents); --dht=false turns it off")
	fs.StringVar(&o.bootstrap, "dht-bootstrap", "", "comma-separated HOST:PORT DHT nodes to join through (default: "+strings.Join(dht.DefaultBootstrap, ",")+")")
	fs.StringVar(&o.listen, "dht-listen", "", "UDP address of the DHT node ([::]:PORT for IPv6 as well) (default "+defaultDHTListen+", or any free port if that one is in use)")
	fs.StringVar(&o.state, "dht-state", "", "file keeping the DHT routing table and node id across runs, or \"none\" (default "+stateDefault+")")
}

// config is the DHT node's configuration, nil with --dht=false.
// defaultState is the routing table's file when --dht-state is not
// given ("" for none); its directory is created.
func (o dhtOpts) config(defaultState string) (*dht.Config, error) {
	if !o.on {
		return nil, nil
	}
	c := dht.DefaultConfig()
	c.Listen = o.listen
	if o.listen == "" {
		c.Listen, c.ListenFallback = defaultDHTListen, "0.0.0.0:0"
	} else if _, _, err := net.SplitHostPort(o.listen); err != nil {
		return nil, fmt.Errorf("--dht-listen %q: want HOST:PORT", o.listen)
	}
	for _, b := range strings.Split(o.bootstrap, ",") {
		if b = strings.TrimSpace(b); b == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(b); err != nil {
			return nil, fmt.Errorf("--dht-bootstrap %q: want HOST:PORT", b)
		}
		c.Bootstrap = append(c.Bootstrap, b)
	}
	switch o.state {
	case "":
		c.StateFile = defaultState
	case "none":
	default:
		c.StateFile = o.state
	}
	if c.StateFile != "" {
		if err := os.MkdirAll(filepath.Dir(c.StateFile), 0o700); err != nil {
			return nil, fmt.Errorf("--dht-state: %w", err)
		}
	}
	return &c, c.Validate()
}

// userDHTState is where download and seed keep the DHT's routing table:
// $XDG_CACHE_HOME/flotilla/dht.json, else ~/.cache/flotilla/dht.json; ""
// when neither variable is set (the table is then not kept).
func userDHTState(getenv func(string) string) string {
	dir := getenv("XDG_CACHE_HOME")
	if dir == "" {
		if home := getenv("HOME"); home != "" {
			dir = filepath.Join(home, ".cache")
		}
	}
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, "flotilla", "dht.json")
}
