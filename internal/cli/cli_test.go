package cli

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
	"time"
)

func TestPrintFlags(t *testing.T) {
	fs := NewFlagSet("x")
	fs.String("cluster-key-file", "", "file holding the cluster key (`coord keygen > cluster.key` makes one)")
	fs.Bool("v", false, "log diagnostics")
	fs.Duration("timeout", 10*time.Second, "how long to wait")
	fs.Int("n", 0, "how many")
	var b bytes.Buffer
	PrintFlags(&b, fs)
	want := `  --cluster-key-file string
      file holding the cluster key (` + "`coord keygen > cluster.key`" + ` makes one)
  --n int
      how many
  --timeout duration
      how long to wait (default 10s)
  --v
      log diagnostics
`
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestHelpWithoutFlags(t *testing.T) {
	var b bytes.Buffer
	Help(&b, "coord keygen", "Writes a key.", NewFlagSet("keygen"))
	if got, want := b.String(), "Usage: coord keygen\n\nWrites a key.\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestParse(t *testing.T) {
	fs := NewFlagSet("x")
	j := fs.Bool("json", false, "")
	pos, err := Parse(fs, []string{"a.torrent", "--json", "--", "--b"}, true)
	if err != nil || !*j || len(pos) != 2 || pos[0] != "a.torrent" || pos[1] != "--b" {
		t.Fatalf("got %q, %v, json %v", pos, err, *j)
	}
	if _, err := Parse(NewFlagSet("y"), []string{"--help"}, true); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	if _, err := Parse(NewFlagSet("y"), []string{"--frob"}, false); err == nil || err.Error() != "flag provided but not defined: -frob" {
		t.Fatalf("--frob: %v", err)
	}
}

func TestVersionOf(t *testing.T) {
	for _, c := range []struct {
		bi   debug.BuildInfo
		want string
	}{
		{debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, "v1.2.3"},
		{debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "false"}}}, "0123456789ab"},
		{debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"}}}, "0123456789ab+dirty"},
		{debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev"},
	} {
		if got := versionOf(&c.bi); got != c.want {
			t.Errorf("versionOf(%+v) = %q, want %q", c.bi, got, c.want)
		}
	}
}

func TestStartCPUProfile(t *testing.T) {
	stop, err := StartCPUProfile("")
	if err != nil {
		t.Fatal(err)
	}
	stop() // no profile: nothing to stop
	path := filepath.Join(t.TempDir(), "cpu.pprof")
	stop, err = StartCPUProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if st, err := os.Stat(path); err != nil || st.Size() == 0 {
		t.Fatalf("profile %s: %v, %v", path, st, err)
	}
	if _, err := StartCPUProfile(filepath.Join(t.TempDir(), "no", "such", "dir", "cpu.pprof")); err == nil {
		t.Fatal("a profile in a missing directory was started")
	}
}
