// Command fota is the one binary of the FOTA stack: the LwM2M server, the
// device client, the delta generator, the flash simulator and the installer,
// each a subcommand.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

// command is one subcommand. Each lives in its own file and registers itself
// in init, so that the dispatcher needs no edit when one is added.
type command struct {
	summary string
	run     func(args []string) error
}

var commands = map[string]command{}

func register(name, summary string, run func(args []string) error) {
	commands[name] = command{summary: summary, run: run}
}

// commandGroups are the commands with sub-commands, by name (the tests
// walk them to check every sub-command's help).
var commandGroups = map[string]group{}

// registerGroup registers a command with sub-commands.
func registerGroup(g group, summary string) {
	commandGroups[g.name] = g
	register(g.name, summary, g.run)
}

// exitError carries a specific exit status (for example 3 for a simulated
// power cut) up to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() { os.Exit(run(os.Args[1:])) }

// run runs the subcommand args[0] and returns the exit status: 0, 1 for a
// failure, 2 for a usage error, or what an exitError carries.
func run(args []string) int {
	if len(args) == 0 {
		mainHelp(os.Stderr)
		return 2
	}
	name := args[0]
	switch {
	case name == "-h" || name == "--help" || name == "-help" || (name == "help" && len(args) == 1):
		mainHelp(os.Stdout)
		return 0
	case name == "help":
		// `fota help campaign` is `fota campaign --help`.
		name, args = args[1], []string{args[1], "--help"}
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "fota: unknown command %q (fota --help lists them)\n", name)
		return 2
	}
	err := c.run(args[1:])
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	}
	fmt.Fprintf(os.Stderr, "fota %s: %v\n", name, err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}
