package main

import (
	"flag"
	"fmt"
	"net"
	"strings"

	"flotilla/dht"
)

// dhtOpts are the DHT flags of coord download, seed and serve.
//
// --dht is off by default for now: the end-to-end tests start coord as a
// separate program, where the dht package's guard (testing.Testing) does
// not run, so a default-on DHT would have them reach the public routers.
// Turning it on by default needs those tests to pass --dht=false or a
// local --dht-bootstrap first.
type dhtOpts struct {
	on        bool
	bootstrap string
	listen    string
}

func (o *dhtOpts) register(fs *flag.FlagSet) {
	fs.BoolVar(&o.on, "dht", false, "find peers through the BitTorrent DHT too (never for private torrents)")
	fs.StringVar(&o.bootstrap, "dht-bootstrap", "", "comma-separated HOST:PORT DHT nodes to join through (default: "+strings.Join(dht.DefaultBootstrap, ",")+")")
	fs.StringVar(&o.listen, "dht-listen", "0.0.0.0:6881", "UDP address of the DHT node ([::]:PORT for IPv6 as well)")
}

// config is the DHT node's configuration, nil without --dht; stateFile
// (may be empty) keeps the routing table across runs.
func (o dhtOpts) config(stateFile string) (*dht.Config, error) {
	if !o.on {
		return nil, nil
	}
	c := dht.DefaultConfig()
	c.Listen, c.StateFile = o.listen, stateFile
	if _, _, err := net.SplitHostPort(o.listen); err != nil {
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
	return &c, c.Validate()
}
