package clusteropt

import (
	"errors"
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestEndpoints(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want Endpoints
	}{
		{Options{Listen: "10.0.0.2:7946"}, Endpoints{GossipBind: "10.0.0.2:7946", DelegateBind: "10.0.0.2:7947", DelegateAdvertise: "10.0.0.2:7947"}},
		// No port: the cluster's default, 7946.
		{Options{Listen: "10.0.0.2"}, Endpoints{GossipBind: "10.0.0.2:7946", DelegateBind: "10.0.0.2:7947", DelegateAdvertise: "10.0.0.2:7947"}},
		{Options{Listen: "::1"}, Endpoints{GossipBind: "[::1]:7946", DelegateBind: "[::1]:7947", DelegateAdvertise: "[::1]:7947"}},
		{Options{Listen: "[::1]"}, Endpoints{GossipBind: "[::1]:7946", DelegateBind: "[::1]:7947", DelegateAdvertise: "[::1]:7947"}},
		// Port 0: the delegate endpoint takes any free port too.
		{Options{Listen: "127.0.0.1:0"}, Endpoints{GossipBind: "127.0.0.1:0", DelegateBind: "127.0.0.1:0", DelegateAdvertise: "127.0.0.1:0"}},
		{Options{Listen: "0.0.0.0:7000", Advertise: "203.0.113.5:30000"}, Endpoints{GossipBind: "0.0.0.0:7000", GossipAdvertise: "203.0.113.5:30000",
			DelegateBind: "0.0.0.0:7001", DelegateAdvertise: "203.0.113.5:30001"}},
	} {
		got, err := tc.o.Endpoints()
		if err != nil {
			t.Errorf("%+v: %v", tc.o, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%+v:\n got %+v\nwant %+v", tc.o, got, tc.want)
		}
	}
	for _, o := range []Options{
		{},
		{Listen: ":7946"},
		{Listen: "10.0.0.2:x"},
		{Listen: "10.0.0.2:65535"},
		{Listen: "0.0.0.0:7946"},
		{Listen: "10.0.0.2:7946", Advertise: "host"},
	} {
		if _, err := o.Endpoints(); !errors.Is(err, ErrAddr) {
			t.Errorf("%+v: err %v, want ErrAddr", o, err)
		}
	}
}

func TestFlags(t *testing.T) {
	var o Options
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.Register(fs, "members to join")
	if err := fs.Parse([]string{"--cluster-listen", "10.0.0.2", "--join", " a, b:7000 ,,c ", "--cluster-key-file", "k"}); err != nil {
		t.Fatal(err)
	}
	if !o.Enabled() || o.Listen != "10.0.0.2" || o.KeyFile != "k" {
		t.Fatalf("parsed %+v", o)
	}
	if got := o.JoinList(); !reflect.DeepEqual(got, []string{"a", "b:7000", "c"}) {
		t.Errorf("JoinList %q", got)
	}
	if u := fs.Lookup("join").Usage; !strings.HasPrefix(u, "members to join") || !strings.Contains(u, "7946") {
		t.Errorf("--join usage does not say what a missing port means: %q", u)
	}
	if u := fs.Lookup("cluster-listen").Usage; !strings.Contains(u, "7946") {
		t.Errorf("--cluster-listen usage does not give the default port: %q", u)
	}
	if (&Options{}).Enabled() {
		t.Error("no flags: cluster enabled")
	}
}
