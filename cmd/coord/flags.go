package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// newFlagSet makes a flag set for a subcommand whose usage text names the
// positional arguments and explains every flag.
func newFlagSet(name, positional, summary string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("coord "+name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: coord %s %s [FLAGS]\n\n%s\n\nFlags:\n", name, positional, summary)
		fs.VisitAll(func(f *flag.Flag) {
			typ, usage := flag.UnquoteUsage(f)
			fmt.Fprintf(out, "  --%s", f.Name)
			if typ != "" {
				fmt.Fprintf(out, " %s", typ)
			}
			fmt.Fprintf(out, "\n      %s", strings.ReplaceAll(usage, "\n", "\n      "))
			if f.DefValue != "" && f.DefValue != "false" {
				fmt.Fprintf(out, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(out)
		})
	}
	return fs
}

// parseInterspersed parses flags that may come before, between or after
// positional arguments ("coord announce a.torrent --json") and returns the
// positional ones. It returns flag.ErrHelp for --help.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
