// Package cli is what Flotilla's commands (coord, swarmnode,
// flotilla-bench) share on their command line: one way to list flags in
// help text (always with two dashes), parsing with flags between
// positional arguments, and the version taken from the build.
//
// A flag set made by NewFlagSet prints nothing by itself: Parse returns
// the error (or flag.ErrHelp) and the command decides what to print, so
// that every message starts with the command's name.
package cli

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strings"
)

// NewFlagSet returns a flag set that reports errors by returning them and
// prints nothing itself.
func NewFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// Parse parses args with fs and returns the positional arguments. With
// interspersed, flags may come before, between or after them ("coord
// announce a.torrent --json"); "--" ends the flags either way. It returns
// flag.ErrHelp for -h, -help or --help, and the flag package's error for
// a bad flag.
func Parse(fs *flag.FlagSet, args []string, interspersed bool) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if !interspersed || len(args) == 0 {
			return append(pos, args...), nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// Help writes a command's help: "Usage: USAGE", the summary, and the
// flags (the "Flags:" heading only when there are any).
func Help(w io.Writer, usage, summary string, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: %s\n", usage)
	if summary != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(summary, "\n"))
	}
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintf(w, "\nFlags:\n")
		PrintFlags(w, fs)
	}
}

// PrintFlags lists fs's flags, each as "  --name TYPE" and its usage
// indented below, with the default when it is not the zero value. TYPE
// comes from the flag's value (string, int, duration...; none for a
// boolean): unlike flag.PrintDefaults, a `backquoted` word in the usage
// stays part of the sentence instead of becoming the placeholder.
func PrintFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		typ, _ := flag.UnquoteUsage(&flag.Flag{Value: f.Value})
		fmt.Fprintf(w, "  --%s", f.Name)
		if typ != "" {
			fmt.Fprintf(w, " %s", typ)
		}
		fmt.Fprintf(w, "\n      %s", strings.ReplaceAll(f.Usage, "\n", "\n      "))
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// Version is the running program's version, from its build information:
// the main module's version when it was built from a module version (`go
// install flotilla/cmd/coord@v1.2.3`), otherwise the VCS revision it was
// built from (12 hex digits, "+dirty" with uncommitted changes), otherwise
// "dev".
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	return versionOf(bi)
}

func versionOf(bi *debug.BuildInfo) string {
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "+dirty"
	}
	return rev
}

// StartCPUProfile starts a Go CPU profile written to path (a command's
// --cpuprofile); stop ends it and closes the file. An empty path profiles
// nothing.
func StartCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
