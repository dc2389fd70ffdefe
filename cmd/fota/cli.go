package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// The CLI conventions of every subcommand live here, so that no command
// file carries its own: `-h`/`--help` prints the usage line (positional
// arguments and sub-commands), the flags and an example on stdout and exits
// 0; a flag that does not exist is one line on stderr and exit status 2, the
// status of every usage error (as flag.ExitOnError and the BSD tools use).

// cmdFlags is a subcommand's flag set with what its help shows.
type cmdFlags struct {
	*flag.FlagSet
	name     string   // "campaign status"
	args     string   // the synopsis after the name: "[ID] [--watch]"
	summary  string   // one sentence
	examples []string // whole command lines
}

// newFlags returns the flag set of `fota NAME`; args is the synopsis of its
// positional arguments ("" for none), examples whole command lines.
func newFlags(name, args, summary string, examples ...string) *cmdFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// The flag package prints the whole flag list after any error, and on
	// stderr even for -h; parse prints what is wanted instead.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &cmdFlags{FlagSet: fs, name: name, args: args, summary: summary, examples: examples}
}

// parse parses flags and positional arguments in any order (`fota flash
// read F -o out` as well as `-o out F`; the flag package alone stops at the
// first positional) and returns the positionals. Everything after "--" is
// positional, so a value like "-5" can be passed. -h and --help print the
// help on stdout and return flag.ErrHelp, which main turns into exit 0; a
// bad flag returns an exit-2 error naming it.
func (c *cmdFlags) parse(args []string) ([]string, error) {
	var pos []string
	for {
		err := c.FlagSet.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			c.help(os.Stdout)
			return nil, flag.ErrHelp
		}
		if err != nil {
			return nil, &exitError{2, fmt.Errorf("%v (see fota %s --help)", err, c.name)}
		}
		rest := c.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// parseN is parse for a command that takes between min and max positional
// arguments (max < 0: no limit); a wrong number is a usage error.
func (c *cmdFlags) parseN(args []string, min, max int) ([]string, error) {
	pos, err := c.parse(args)
	if err != nil {
		return nil, err
	}
	if len(pos) < min || (max >= 0 && len(pos) > max) {
		return nil, c.usageError(fmt.Sprintf("want %s, got %d arguments", argCount(min, max), len(pos)))
	}
	return pos, nil
}

func argCount(min, max int) string {
	switch {
	case min == max && min == 0:
		return "no arguments"
	case min == max && min == 1:
		return "1 argument"
	case min == max:
		return fmt.Sprintf("%d arguments", min)
	case max < 0:
		return fmt.Sprintf("at least %d arguments", min)
	}
	return fmt.Sprintf("%d to %d arguments", min, max)
}

// usageError is an exit-2 error that shows the usage line.
func (c *cmdFlags) usageError(msg string) error {
	return &exitError{2, fmt.Errorf("%s\nusage: fota %s %s", msg, c.name, c.synopsis())}
}

func (c *cmdFlags) synopsis() string {
	s := c.args
	if hasFlags(c.FlagSet) && !strings.Contains(s, "[flags]") {
		s = strings.TrimSpace(s + " [flags]")
	}
	return s
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// help writes the usage line, the summary, the flags and the examples.
func (c *cmdFlags) help(w io.Writer) {
	fmt.Fprintf(w, "usage: fota %s %s\n\n%s\n", c.name, c.synopsis(), c.summary)
	if hasFlags(c.FlagSet) {
		fmt.Fprintln(w, "\nflags:")
		printFlags(w, c.FlagSet)
	}
	printExamples(w, c.examples)
}

// printFlags lists the flags as `--name TYPE` and their text. A default is
// shown only when it is not the zero value; secrets therefore have empty
// defaults and name their environment variable in the text instead (a
// default read from the environment would print the secret).
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		arg, text := flag.UnquoteUsage(f)
		line := "  -" + f.Name
		if len(f.Name) > 1 {
			line = "  --" + f.Name
		}
		if arg != "" {
			line += " " + arg
		}
		if d := f.DefValue; d != "" && d != "0" && d != "false" && d != "0s" && !strings.Contains(text, "(default") {
			text += fmt.Sprintf(" (default %s)", d)
		}
		fmt.Fprintf(w, "%s\n      %s\n", line, text)
	})
}

func printExamples(w io.Writer, examples []string) {
	if len(examples) == 0 {
		return
	}
	fmt.Fprintln(w, "\nexample:")
	for _, e := range examples {
		fmt.Fprintf(w, "  %s\n", e)
	}
}

// subcommand is one command of a command group (`fota campaign create`).
type subcommand struct {
	name    string
	aliases []string
	args    string // synopsis for the group's listing
	summary string
	run     func(args []string) error
}

// group is a command with sub-commands: `fota campaign`, `fota device`.
type group struct {
	name     string
	summary  string
	subs     []subcommand
	examples []string
}

// run dispatches to the sub-command args[0]. `fota G`, `fota G --help` and
// `fota G help [SUB]` show the listing or the sub-command's help.
func (g group) run(args []string) error {
	if len(args) == 0 {
		g.help(os.Stderr)
		return &exitError{2, fmt.Errorf("want a command: %s", g.names())}
	}
	switch a := args[0]; {
	case a == "-h" || a == "--help" || a == "-help":
		g.help(os.Stdout)
		return flag.ErrHelp
	case a == "help" && len(args) > 1:
		if s, ok := g.find(args[1]); ok {
			return s.run([]string{"--help"})
		}
	case a == "help":
		g.help(os.Stdout)
		return flag.ErrHelp
	case strings.HasPrefix(a, "-"):
		return &exitError{2, fmt.Errorf("flag provided but not defined: %s (flags follow the command: fota %s COMMAND [flags]; see fota %s --help)", a, g.name, g.name)}
	}
	s, ok := g.find(args[0])
	if !ok {
		return &exitError{2, fmt.Errorf("unknown %s command %q (%s)", g.name, args[0], g.names())}
	}
	return s.run(args[1:])
}

func (g group) find(name string) (subcommand, bool) {
	for _, s := range g.subs {
		if s.name == name {
			return s, true
		}
		for _, a := range s.aliases {
			if a == name {
				return s, true
			}
		}
	}
	return subcommand{}, false
}

func (g group) names() string {
	n := make([]string, len(g.subs))
	for i, s := range g.subs {
		n[i] = s.name
	}
	return strings.Join(n, ", ")
}

func (g group) help(w io.Writer) {
	fmt.Fprintf(w, "usage: fota %s COMMAND [ARGS] [flags]\n\n%s\n\ncommands:\n", g.name, g.summary)
	for _, s := range g.subs {
		fmt.Fprintf(w, "  %-10s %s\n", s.name, s.summary)
		if s.args != "" {
			fmt.Fprintf(w, "  %-10s   fota %s %s %s\n", "", g.name, s.name, s.args)
		}
	}
	fmt.Fprintf(w, "\nfota %s COMMAND --help shows a command's flags.\n", g.name)
	printExamples(w, g.examples)
}

// mainHelp lists the subcommands.
func mainHelp(w io.Writer) {
	fmt.Fprintln(w, "usage: fota COMMAND [ARGS] [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nfota COMMAND --help shows a command's arguments, flags and an example.")
}
