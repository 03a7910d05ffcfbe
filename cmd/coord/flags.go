package main

import (
	"errors"
	"flag"
	"fmt"

	"flotilla/internal/cli"
)

// flagSet is a subcommand's flags with the help text that names its
// positional arguments and explains every flag.
type flagSet struct {
	*flag.FlagSet
	env        *cmdEnv
	name       string // "coord download"
	positional string
	summary    string
}

func newFlagSet(name, positional, summary string, env *cmdEnv) *flagSet {
	return &flagSet{FlagSet: cli.NewFlagSet("coord " + name), env: env, name: "coord " + name, positional: positional, summary: summary}
}

// parse parses flags that may come before, between or after positional
// arguments ("coord announce a.torrent --json") and returns the positional
// ones. For --help it prints the help on stdout and returns flag.ErrHelp;
// for a bad flag it prints one line on stderr saying so and where the
// flags are explained, and returns the error.
func (f *flagSet) parse(args []string) ([]string, error) {
	pos, err := cli.Parse(f.FlagSet, args, true)
	switch {
	case errors.Is(err, flag.ErrHelp):
		usage := f.name
		if f.positional != "" {
			usage += " " + f.positional
		}
		n := 0
		f.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			usage += " [FLAGS]"
		}
		cli.Help(f.env.stdout, usage, f.summary, f.FlagSet)
	case err != nil:
		fmt.Fprintf(f.env.stderr, "%s: %v; run '%s --help' for its flags\n", f.name, err, f.name)
	}
	return pos, err
}
